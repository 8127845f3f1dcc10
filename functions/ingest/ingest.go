// Package ingest accepts orders over HTTP and hands them to the orders queue through the
// queue output binding. Callers get 202 at once and never wait on the store: this is the
// load-levelling half of the pipeline.
package ingest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
)

// Name is the function's folder; the host calls POST /ingest.
const Name = "ingest"

// MaxQueueMessageBytes is Azure Storage's limit for one message, after base64.
const MaxQueueMessageBytes = 64 << 10

// Function validates and enqueues orders.
type Function struct {
	MaxBodyBytes int64
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.HTTPTrigger, HTTPOutput: "res", Func: f}
}

// Invoke handles POST /api/orders.
func (f *Function) Invoke(_ context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	req, err := inv.Request.HTTPTrigger("req")
	if err != nil {
		return reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()})), nil
	}
	body, p := invocation.JSONBody(req, f.MaxBodyBytes)
	if p != nil {
		return reply(invocation.ProblemResponse(*p)), nil
	}
	o, err := order.Parse(body, order.ParseOptions{AssignID: true})
	if err != nil {
		return reply(invalid(err)), nil
	}
	// The host stores an object output as indented JSON and then base64-encodes it; a
	// message over the queue's limit would fail the invocation after we said 202.
	indented, _ := json.MarshalIndent(o.Fields, "", "  ")
	if n := base64.StdEncoding.EncodedLen(len(indented)); n > MaxQueueMessageBytes {
		return reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the order takes %d bytes on the queue; the limit is %d", n, MaxQueueMessageBytes)})), nil
	}
	location := "/api/customers/" + url.PathEscape(o.CustomerID) + "/orders/" + url.PathEscape(o.ID)
	inv.Log("order accepted", "order_id", o.ID, "customer_id", o.CustomerID, "items", len(o.Items))
	return &invocation.Response{Outputs: map[string]any{
		// An object, never a string: the host base64-decodes string outputs that happen
		// to look like base64.
		"order": json.RawMessage(o.Canonical()),
		"res": invocation.JSONResponse(http.StatusAccepted,
			map[string]string{"id": o.ID, "customerId": o.CustomerID, "status": "accepted"},
			map[string]string{"Location": location}),
	}}, nil
}

func reply(r invocation.HTTPResponse) *invocation.Response {
	return &invocation.Response{Outputs: map[string]any{"res": r}}
}

// invalid renders a validation error as a 400 naming the field.
func invalid(err error) invocation.HTTPResponse {
	var fe *order.FieldError
	if errors.As(err, &fe) {
		return invocation.ProblemResponse(invocation.Problem{Type: "urn:sluice:problem:invalid-order", Title: "Invalid order",
			Status: http.StatusBadRequest, Field: fe.Field, Detail: fe.Error()})
	}
	return invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()})
}
