// Package read serves one order by a point read: GET /api/customers/{customerId}/orders/{id}.
package read

import (
	"context"
	"net/http"

	"github.com/sluice-dev/sluice/functions/httpshed"
	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Name is the function's folder; the host calls POST /read.
const Name = "read"

// Function reads orders.
type Function struct {
	Store *cosmosstore.Store
	// Wait is how long a read may queue for a permit before it is shed.
	Wait resilience.CallOptions
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.HTTPTrigger, HTTPOutput: "res", Func: f}
}

// Invoke handles the read.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	req, err := inv.Request.HTTPTrigger("req")
	if err != nil {
		return httpshed.Reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()})), nil
	}
	customerID, id, p := httpshed.Keys(req)
	if p != nil {
		return httpshed.Reply(invocation.ProblemResponse(*p)), nil
	}
	item, found, err := f.Store.Read(ctx, customerID, id, f.Wait)
	if err != nil {
		return httpshed.Reply(httpshed.FromError(inv, err)), nil
	}
	if !found {
		return httpshed.Reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusNotFound,
			Detail: "no order with this id for this customer"})), nil
	}
	o, err := cosmosstore.PublicOrder(item)
	if err != nil {
		return nil, err
	}
	return httpshed.Reply(invocation.JSONResponse(http.StatusOK, o, nil)), nil
}
