// Package faults holds the end-to-end fault suite: the real handler binary under the host
// imitation, with the fault proxy in front of the Cosmos stand-in and the fulfilment fake
// scripted to misbehave. Each case ends with the same accounting, done by a Ledger: every
// order sent is in its sink exactly once, or in the poison queue with a reason, and
// nowhere else.
//
// The Ledger, the Console collector and the senders are exported so that the bad-input
// corpus can settle its queue messages the same way.
package faults

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/stack"
)

// Order is one order sent into the pipeline.
type Order struct {
	CustomerID, ID string
}

// Key is how the container ledger names an order: customerId/id.
func (o Order) Key() string { return o.CustomerID + "/" + o.ID }

// JSON is the order as a producer would enqueue it.
func (o Order) JSON() string {
	b, _ := json.Marshal(map[string]any{
		"id": o.ID, "customerId": o.CustomerID,
		"items": []map[string]any{{"sku": "apple", "quantity": 1}},
	})
	return string(b)
}

// NewOrders names n orders prefix-0000 … spread over a handful of customers.
func NewOrders(prefix string, n int) []Order {
	out := make([]Order, n)
	for i := range out {
		out[i] = Order{CustomerID: fmt.Sprintf("%s-c%d", prefix, i%7), ID: fmt.Sprintf("%s-%04d", prefix, i)}
	}
	return out
}

// Keys returns the container keys of orders.
func Keys(orders []Order) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.Key()
	}
	return out
}

// OrderIDs returns the ids of orders, the keys the fulfilment ledger uses.
func OrderIDs(orders []Order) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// Send enqueues the orders on the orders queue, a few at a time.
func Send(ctx context.Context, s *stack.Stack, orders []Order) error {
	return SendOver(ctx, s, orders, 0)
}

// SendOver enqueues the orders evenly over span, so that they meet a fault that lasts a
// while rather than all arriving before it bites. A zero span sends them at once.
func SendOver(ctx context.Context, s *stack.Stack, orders []Order, span time.Duration) error {
	if span <= 0 {
		var wg sync.WaitGroup
		errs := make(chan error, len(orders))
		sem := make(chan struct{}, 16)
		for _, o := range orders {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := s.Enqueue(ctx, "orders", o.JSON()); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	gap := span / time.Duration(len(orders))
	next := time.Now()
	for _, o := range orders {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		next = next.Add(gap)
		if err := s.Enqueue(ctx, "orders", o.JSON()); err != nil {
			return err
		}
	}
	return nil
}

// Poisoned is one message found on a poison queue.
type Poisoned struct {
	Key    string // the ledger key of the message it holds; "" when unreadable
	Reason string // the handler's reason; "" for a bare copy the host made
	Detail string
	// Message is the original message: the handler's copy in its poison document, or
	// the host's bare copy.
	Message string
	Text    string // the poison message as stored, base64-decoded
}

// Ledger accounts for the messages of one queue: where each ended up. It takes messages
// off the poison queue as it finds them (nothing else reads a poison queue), so it can be
// polled without missing any and without counting any twice.
type Ledger struct {
	s      *stack.Stack
	queue  string
	keyOf  func(text string) string
	stored func(ctx context.Context) (map[string]int, error)
	poison *azqueue.QueueClient

	mu    sync.Mutex
	taken []Poisoned
}

// OrdersLedger accounts for orders: stored in the Cosmos container or in orders-poison.
func OrdersLedger(s *stack.Stack) *Ledger {
	return newLedger(s, "orders", func(text string) string {
		var o struct {
			ID         string `json:"id"`
			CustomerID string `json:"customerId"`
		}
		if json.Unmarshal([]byte(text), &o) != nil {
			return ""
		}
		return o.CustomerID + "/" + o.ID
	}, s.CountByID)
}

// FulfilmentLedger accounts for notifications: accepted by the fulfilment API (one 2xx
// for the order's idempotency key) or in notifications-poison.
func FulfilmentLedger(s *stack.Stack) *Ledger {
	return newLedger(s, "notifications", func(text string) string {
		var n struct {
			OrderID string `json:"orderId"`
		}
		if json.Unmarshal([]byte(text), &n) != nil {
			return ""
		}
		return n.OrderID
	}, func(context.Context) (map[string]int, error) {
		accepted := map[string]int{}
		for _, c := range s.Fulfilment.Calls() {
			if c.Status >= 200 && c.Status < 300 {
				accepted[c.IdempotencyKey]++
			}
		}
		return accepted, nil
	})
}

func newLedger(s *stack.Stack, queue string, keyOf func(string) string, stored func(context.Context) (map[string]int, error)) *Ledger {
	svc, err := azqueue.NewServiceClientFromConnectionString(s.Azurite.ConnectionString, nil)
	if err != nil {
		// The stack opened its own client from the same string a moment ago.
		panic(err)
	}
	return &Ledger{s: s, queue: queue, keyOf: keyOf, stored: stored, poison: svc.NewQueueClient(queue + "-poison")}
}

// collect takes every visible message off the poison queue.
func (l *Ledger) collect(ctx context.Context) error {
	for {
		n, vis := int32(32), int32(60)
		resp, err := l.poison.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
		if err != nil {
			if strings.Contains(err.Error(), "QueueNotFound") {
				return nil
			}
			return err
		}
		if len(resp.Messages) == 0 {
			return nil
		}
		for _, m := range resp.Messages {
			l.mu.Lock()
			l.taken = append(l.taken, l.decode(deref(m.MessageText)))
			l.mu.Unlock()
			if _, err := l.poison.DeleteMessage(ctx, deref(m.MessageID), deref(m.PopReceipt), nil); err != nil {
				return err
			}
		}
	}
}

// decode reads a poison message: the handler's {reason, message, …} document, or the
// host's bare copy of the original.
func (l *Ledger) decode(raw string) Poisoned {
	text := raw
	if b, err := base64.StdEncoding.DecodeString(raw); err == nil {
		text = string(b)
	}
	var pm struct {
		Reason  string `json:"reason"`
		Detail  string `json:"detail"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(text), &pm) == nil && pm.Reason != "" {
		return Poisoned{Key: l.keyOf(pm.Message), Reason: pm.Reason, Detail: pm.Detail, Message: pm.Message, Text: text}
	}
	return Poisoned{Key: l.keyOf(text), Message: text, Text: text}
}

// Collect takes what is on the poison queue and returns every poison message taken so
// far.
func (l *Ledger) Collect(ctx context.Context) ([]Poisoned, error) {
	if err := l.collect(ctx); err != nil {
		return nil, fmt.Errorf("reading %s-poison: %w", l.queue, err)
	}
	return l.Poisoned(), nil
}

// Poisoned returns the poison messages taken so far.
func (l *Ledger) Poisoned() []Poisoned {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.taken)
}

// Tally is where the messages of a run ended up.
type Tally struct {
	Sent       int
	Stored     int // distinct sent keys found in the sink
	Poisoned   int // distinct sent keys found on the poison queue
	Duplicated int // sent keys stored more than once, poisoned more than once, or both
	Queued     int // messages still on the queue, visible or not
	Reasons    map[string]int

	Missing    []string // sent, found nowhere
	Repeated   []string // the duplicated keys
	Unreasoned []string // poisoned without a reason
	Strays     []string // stored or poisoned, never sent
}

// Settled reports whether every sent key has an outcome and the queue is empty.
func (t Tally) Settled() bool {
	return len(t.Missing) == 0 && t.Queued == 0
}

// Problems lists every way the tally breaks "exactly once in the sink, or in the poison
// queue with its reason, and nowhere else".
func (t Tally) Problems() []string {
	var p []string
	if len(t.Missing) > 0 {
		p = append(p, fmt.Sprintf("%d sent but found nowhere: %s", len(t.Missing), sample(t.Missing)))
	}
	if len(t.Repeated) > 0 {
		p = append(p, fmt.Sprintf("%d found more than once: %s", len(t.Repeated), sample(t.Repeated)))
	}
	if len(t.Unreasoned) > 0 {
		p = append(p, fmt.Sprintf("%d poisoned without a reason: %s", len(t.Unreasoned), sample(t.Unreasoned)))
	}
	if len(t.Strays) > 0 {
		p = append(p, fmt.Sprintf("%d found but never sent: %s", len(t.Strays), sample(t.Strays)))
	}
	if t.Queued > 0 {
		p = append(p, fmt.Sprintf("%d messages still queued", t.Queued))
	}
	return p
}

func (t Tally) String() string {
	reasons := make([]string, 0, len(t.Reasons))
	for r, n := range t.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("sent %d, stored %d, poisoned %d %v, duplicated %d, missing %d, still queued %d",
		t.Sent, t.Stored, t.Poisoned, reasons, t.Duplicated, len(t.Missing), t.Queued)
}

func sample(keys []string) string {
	if len(keys) > 5 {
		return strings.Join(keys[:5], ", ") + fmt.Sprintf(" and %d more", len(keys)-5)
	}
	return strings.Join(keys, ", ")
}

// Account takes what is on the poison queue and counts where each sent key is.
func (l *Ledger) Account(ctx context.Context, sent []string) (Tally, error) {
	taken, err := l.Collect(ctx)
	if err != nil {
		return Tally{}, err
	}
	stored, err := l.stored(ctx)
	if err != nil {
		return Tally{}, fmt.Errorf("reading the sink: %w", err)
	}
	queued, err := l.s.ApproximateCount(ctx, l.queue)
	if err != nil {
		return Tally{}, err
	}
	poisoned := map[string]int{}
	t := Tally{Sent: len(sent), Queued: queued, Reasons: map[string]int{}}
	for _, p := range taken {
		poisoned[p.Key]++
		if p.Reason == "" {
			t.Unreasoned = append(t.Unreasoned, fmt.Sprintf("%q", truncate(p.Text, 80)))
		}
		t.Reasons[p.Reason]++
	}
	isSent := make(map[string]bool, len(sent))
	for _, k := range sent {
		isSent[k] = true
		s, p := stored[k], poisoned[k]
		if s > 0 {
			t.Stored++
		}
		if p > 0 {
			t.Poisoned++
		}
		switch {
		case s+p == 0:
			t.Missing = append(t.Missing, k)
		case s+p > 1:
			t.Duplicated++
			t.Repeated = append(t.Repeated, fmt.Sprintf("%s (stored %d, poisoned %d)", k, s, p))
		}
	}
	for k := range stored {
		if !isSent[k] {
			t.Strays = append(t.Strays, k)
		}
	}
	for k := range poisoned {
		if !isSent[k] && k != "" {
			t.Strays = append(t.Strays, k)
		}
	}
	sort.Strings(t.Strays)
	return t, nil
}

// Settle polls until every sent key has an outcome and the queue is empty, or limit
// passes, and returns the last tally. It fails the test only when it cannot read.
func (l *Ledger) Settle(t testing.TB, sent []string, limit time.Duration) Tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit+time.Minute)
	defer cancel()
	deadline := time.Now().Add(limit)
	for {
		tally, err := l.Account(ctx, sent)
		if err != nil {
			t.Fatalf("accounting for %s: %v", l.queue, err)
		}
		if tally.Settled() || time.Now().After(deadline) {
			return tally
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// WaitFor polls cond every 100 ms until it holds, failing the test after limit.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Check fails the test for every problem in the tally.
func Check(t testing.TB, what string, tally Tally) {
	t.Helper()
	for _, p := range tally.Problems() {
		t.Errorf("%s: %s", what, p)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
