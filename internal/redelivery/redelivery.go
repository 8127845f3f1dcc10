// Package redelivery decides what happens to a queue message its function could not
// finish: re-enqueued with a growing delay while the failure is transient, or poisoned on
// the spot, with its reason, when it can never succeed.
//
// The host alone would retry a failed message maxDequeueCount times, visibilityTimeout
// apart, and then poison it: five quick failures during a throttling storm would poison a
// valid order. A re-enqueued message starts a new dequeue count, so it outlives a storm or
// an outage of any length up to the horizon, and its own attempt count travels inside it.
package redelivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/queues"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// StateField is the member a re-enqueued message carries its history in. Names starting
// with an underscore are reserved, so it cannot collide with an order's own fields.
const StateField = "_redelivery"

// State is a message's history of deferrals.
type State struct {
	Count      int       `json:"count"`
	FirstSeen  time.Time `json:"firstSeen"`
	LastReason string    `json:"lastReason,omitempty"`
}

// Split separates a JSON-object message into its body and its redelivery state. A
// message that is not a JSON object is returned as an error; the caller poisons it.
func Split(text string) (body []byte, st State, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &m); err != nil || m == nil {
		return nil, State{}, errors.New("message is not a JSON object")
	}
	raw, ok := m[StateField]
	if !ok {
		return []byte(text), State{}, nil
	}
	// Taking the state out re-encodes the body through a map, which would merge
	// duplicate members and drop trailing data; the order's shape rules are checked on
	// the text as it came. The error is an *order.FieldError, for the caller's reason.
	if err := order.CheckShape([]byte(text)); err != nil {
		return nil, State{}, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, State{}, fmt.Errorf("member %s is malformed", StateField)
	}
	delete(m, StateField)
	body, err = queues.MarshalJSON(m)
	return body, st, err
}

// Join adds st to a JSON-object body.
func Join(body []byte, st State) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if m == nil { // the body was JSON null
		return nil, errors.New("message is not a JSON object")
	}
	m[StateField], _ = json.Marshal(st)
	return queues.MarshalJSON(m)
}

// Queue is the queue a function reads from and the policy for its failed messages.
type Queue struct {
	Name    string
	Client  *queues.Client
	Config  config.RequeueConfig
	Timeout time.Duration // bounds each write to the queue; 10 s when zero
}

// Defer re-enqueues body after a delay chosen from the failure's hint and the message's
// history, or poisons it once the horizon has passed. It writes with a context detached
// from the invocation's, because by the time a function decides to defer, its own
// deadline may be what ran out.
func (q *Queue) Defer(ctx context.Context, inv *invocation.Invocation, msg *invocation.QueueMessage, body []byte, st State, cause error) error {
	now := time.Now().UTC()
	// The horizon counts from the first deferral. Not from msg.InsertionTime: the host
	// lets a JSON message's own members override its metadata, so an order with an
	// "InsertionTime" member would choose its own age. A first-seen time in the future
	// (clock skew, or a hand-made message) would keep the message inside the horizon for
	// ever; it counts from now too.
	if st.FirstSeen.IsZero() || st.FirstSeen.After(now) {
		st.FirstSeen = now
	}
	reason := "transient"
	var hint time.Duration
	if e, ok := resilience.AsError(cause); ok {
		reason, hint = e.Reason, e.RetryAfter
	}
	if now.Sub(st.FirstSeen) > q.Config.Horizon {
		return q.Poison(ctx, inv, msg, string(body), "retry-horizon-exceeded",
			fmt.Sprintf("still failing after %v (%d deferrals); last cause: %v", now.Sub(st.FirstSeen).Round(time.Second), st.Count, cause))
	}
	st.Count++
	st.LastReason = reason
	delay := q.delay(st.Count, hint)
	out, err := Join(body, st)
	if err != nil {
		return err
	}
	wctx, cancel := q.detached(ctx)
	defer cancel()
	if err := q.Client.Send(wctx, q.Name, out, delay); err != nil {
		// The host keeps the message and redelivers it; nothing is lost.
		return fmt.Errorf("re-enqueue after %s: %w", reason, err)
	}
	inv.Logger.Warn("message deferred", "outcome", "deferred", "reason", reason, "deferrals", st.Count,
		"delay_ms", delay.Milliseconds(), "cause", errString(cause))
	return nil
}

// delay grows with the number of deferrals (base × 2^(n-1), capped) and never undercuts
// the dependency's own hint.
func (q *Queue) delay(count int, hint time.Duration) time.Duration {
	// A count below 1 comes only from a message's own (malformed) state; a negative
	// shift would panic.
	d := q.Config.BaseDelay << min(max(count-1, 0), 20)
	if d > q.Config.MaxDelay || d < 0 {
		d = q.Config.MaxDelay
	}
	if hint > d {
		d = min(hint, 7*24*time.Hour)
	}
	return d
}

// Poison writes the message, with its reason, to the poison queue on its first delivery.
func (q *Queue) Poison(ctx context.Context, inv *invocation.Invocation, msg *invocation.QueueMessage, text, reason, detail string) error {
	wctx, cancel := q.detached(ctx)
	defer cancel()
	err := q.Client.Poison(wctx, q.Name, queues.PoisonMessage{
		Reason: reason, Detail: detail, Function: inv.Function, InvocationID: inv.ID,
		MessageID: msg.ID, DequeueCount: msg.DequeueCount, Message: text,
	})
	if err != nil {
		return fmt.Errorf("poison (%s): %w", reason, err)
	}
	inv.Logger.Error("message poisoned", "outcome", "poisoned", "reason", reason, "detail", detail,
		"queue", q.Name+queues.PoisonSuffix)
	return nil
}

func (q *Queue) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	t := q.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return context.WithTimeout(context.WithoutCancel(ctx), t)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Logger returns a logger for a message, carrying its id and dequeue count.
func Logger(inv *invocation.Invocation, msg *invocation.QueueMessage) *slog.Logger {
	return inv.Logger.With("message_id", msg.ID, "dequeue_count", msg.DequeueCount)
}
