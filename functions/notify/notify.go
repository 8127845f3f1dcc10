// Package notify asks the third-party fulfilment API to fulfil each stored order. The API
// rate-limits hard; its Retry-After is honoured within the invocation when it fits, and
// otherwise the message is deferred until then.
package notify

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sluice-dev/sluice/internal/fulfilment"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/redelivery"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Name is the function's folder; the host calls POST /notify.
const Name = "notify"

// Function calls the fulfilment API.
type Function struct {
	Client    *fulfilment.Client
	Queue     *redelivery.Queue
	QueueWait resilience.CallOptions
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.QueueTrigger, Func: f}
}

// Invoke handles one message from the notifications queue.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	msg, err := inv.Request.QueueTrigger("notification")
	if err != nil {
		return nil, err
	}
	inv.Logger = redelivery.Logger(inv, msg)
	body, st, err := redelivery.Split(msg.Text)
	if err != nil {
		return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, "invalid-json", err.Error())
	}
	var n fulfilment.Request
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, "invalid-notification", err.Error())
	}
	for field, v := range map[string]string{"orderId": n.OrderID, "customerId": n.CustomerID} {
		if err := order.CheckKey(v); err != nil {
			return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, "invalid-notification", field+": "+err.Error())
		}
	}
	inv.Logger = inv.Logger.With("order_id", n.OrderID)
	err = f.Client.Fulfil(ctx, n, f.QueueWait, inv.Logger)
	if err == nil {
		inv.Log("fulfilment requested", "outcome", "sent", "deferrals", st.Count)
		return &invocation.Response{}, nil
	}
	var e *resilience.Error
	if errors.As(err, &e) && e.Kind == resilience.Permanent {
		return nil, f.Queue.Poison(ctx, inv, msg, msg.Text, e.Reason, err.Error())
	}
	return nil, f.Queue.Defer(ctx, inv, msg, body, st, err)
}
