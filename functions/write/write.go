// Package write stores an order synchronously: PUT /api/customers/{customerId}/orders/{id}.
// Unlike ingest it waits on the store, so it sheds load instead of queueing: when the
// circuit is open, the instance is at its concurrency limit or the pacer is saturated, the
// caller gets 429 or 503 with Retry-After at once, and the requests it accepts keep their
// latency.
package write

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sluice-dev/sluice/functions/httpshed"
	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Name is the function's folder; the host calls POST /write.
const Name = "write"

// Function writes orders.
type Function struct {
	Store        *cosmosstore.Store
	MaxBodyBytes int64
	// Wait is how long a write may queue for a pacer slot and a permit before it is shed.
	Wait resilience.CallOptions
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.HTTPTrigger, HTTPOutput: "res", Func: f}
}

// Invoke handles the PUT.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	req, err := inv.Request.HTTPTrigger("req")
	if err != nil {
		return httpshed.Reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()})), nil
	}
	// Shed before reading the body: an open circuit answers in microseconds.
	if open, remaining := f.Store.Writes().BreakerOpen(); open {
		return httpshed.Reply(httpshed.FromError(inv, &resilience.Error{Kind: resilience.Rejected, Reason: resilience.ReasonCircuitOpen, RetryAfter: remaining})), nil
	}
	customerID, id, p := httpshed.Keys(req)
	if p != nil {
		return httpshed.Reply(invocation.ProblemResponse(*p)), nil
	}
	body, p := invocation.JSONBody(req, f.MaxBodyBytes)
	if p != nil {
		return httpshed.Reply(invocation.ProblemResponse(*p)), nil
	}
	body, p = withKeys(body, customerID, id)
	if p != nil {
		return httpshed.Reply(invocation.ProblemResponse(*p)), nil
	}
	o, err := order.Parse(body, order.ParseOptions{})
	if err != nil {
		var fe *order.FieldError
		if errors.As(err, &fe) {
			return httpshed.Reply(invocation.ProblemResponse(invocation.Problem{Type: "urn:sluice:problem:invalid-order", Title: "Invalid order",
				Status: http.StatusBadRequest, Field: fe.Field, Detail: fe.Error()})), nil
		}
		return nil, err
	}
	if err := f.Store.Upsert(ctx, o, f.Wait); err != nil {
		return httpshed.Reply(httpshed.FromError(inv, err)), nil
	}
	inv.Log("order stored", "outcome", "written", "order_id", o.ID, "customer_id", o.CustomerID)
	return httpshed.Reply(invocation.JSONResponse(http.StatusOK, json.RawMessage(o.Canonical()), nil)), nil
}

// withKeys fills id and customerId from the route when the body leaves them out, and
// refuses a body that names different ones: the URL says which item is written.
func withKeys(body []byte, customerID, id string) ([]byte, *invocation.Problem) {
	// The map below would merge duplicate members; refuse them, and the rest of what
	// order.Parse refuses, on the body as it came.
	if err := order.CheckShape(body); err != nil {
		var fe *order.FieldError
		if errors.As(err, &fe) {
			return nil, &invocation.Problem{Status: http.StatusBadRequest, Field: fe.Field, Detail: fe.Reason}
		}
		return nil, &invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		// Let order.Parse describe what is wrong with the JSON.
		return body, nil
	}
	for field, want := range map[string]string{"customerId": customerID, "id": id} {
		raw, ok := m[field]
		if !ok {
			m[field], _ = json.Marshal(want)
			continue
		}
		var got string
		if json.Unmarshal(raw, &got) == nil && got != want {
			return nil, &invocation.Problem{Status: http.StatusBadRequest, Field: field, Detail: field + " in the body differs from the one in the URL"}
		}
	}
	out, _ := json.Marshal(m)
	return out, nil
}
