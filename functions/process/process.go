// Package process writes queued orders to Cosmos DB, once each, and hands them on to the
// notifications queue. A transient failure defers the message; a permanent one poisons it
// on its first delivery with the reason.
package process

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/redelivery"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Name is the function's folder; the host calls POST /process.
const Name = "process"

// Function writes orders.
type Function struct {
	Store *cosmosstore.Store
	Queue *redelivery.Queue
	// QueueWait is how long one write may wait for the pacer and a bulkhead permit.
	QueueWait resilience.CallOptions
	// Notify, when set, sends each stored order on to the notifications queue.
	Notify bool
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.QueueTrigger, Func: f}
}

// Notification is the message process sends to notify.
type Notification struct {
	OrderID    string `json:"orderId"`
	CustomerID string `json:"customerId"`
}

// Invoke handles one message from the orders queue.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	msg, err := inv.Request.QueueTrigger("order")
	if err != nil {
		// No message in the envelope: fail, and let the host retry and poison it.
		return nil, err
	}
	inv.Logger = redelivery.Logger(inv, msg)
	body, st, err := redelivery.Split(msg.Text)
	if err != nil {
		reason := "invalid-json"
		var fe *order.FieldError
		if errors.As(err, &fe) {
			reason = "invalid-order"
		}
		return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, reason, err.Error())
	}
	o, err := order.Parse(body, order.ParseOptions{})
	if err != nil {
		reason := "invalid-order"
		var fe *order.FieldError
		if errors.As(err, &fe) && fe.Field == "customerId" {
			reason = "missing-partition-key"
		}
		return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, reason, err.Error())
	}
	inv.Logger = inv.Logger.With("order_id", o.ID, "customer_id", o.CustomerID)

	res, err := f.Store.Create(ctx, o, f.QueueWait)
	if err != nil {
		if resilience.KindOf(err) == resilience.Permanent {
			e, _ := resilience.AsError(err)
			detail := err.Error()
			if e.SubStatus != 0 {
				inv.Logger.Error("cosmos refused the order", "status", e.Status, "substatus", e.SubStatus)
			}
			return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, e.Reason, detail)
		}
		return nil, f.Queue.Defer(ctx, inv, msg, body, st, err)
	}
	if res == cosmosstore.Duplicate {
		inv.Log("order already stored; duplicate delivery changed nothing", "outcome", "duplicate", "deferrals", st.Count)
	} else {
		inv.Log("order stored", "outcome", "written", "deferrals", st.Count)
	}
	out := map[string]any{}
	if f.Notify {
		n, _ := json.Marshal(Notification{OrderID: o.ID, CustomerID: o.CustomerID})
		out["notification"] = json.RawMessage(n)
	}
	return &invocation.Response{Outputs: out}, nil
}
