package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

// TestIngestRejectsBadOrders checks that each bad request gets a 4xx problem document
// naming the field at fault, and that nothing reaches the queue.
func TestIngestRejectsBadOrders(t *testing.T) {
	s := stack.StartT(t, stack.Options{NoFulfilment: true})
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		field                   string
	}{
		{"invalid-json", "application/json", `{"id": "a",`, 400, ""},
		{"missing-customer", "application/json", `{"id":"a","items":[{"sku":"x","quantity":1}]}`, 400, "customerId"},
		{"empty-customer", "application/json", `{"id":"a","customerId":"","items":[{"sku":"x","quantity":1}]}`, 400, "customerId"},
		{"empty-id", "application/json", `{"id":"","customerId":"c","items":[{"sku":"x","quantity":1}]}`, 400, "id"},
		{"id-wrong-type", "application/json", `{"id":5,"customerId":"c","items":[{"sku":"x","quantity":1}]}`, 400, "id"},
		{"items-wrong-type", "application/json", `{"id":"a","customerId":"c","items":"many"}`, 400, "items"},
		{"quantity-wrong-type", "application/json", `{"id":"a","customerId":"c","items":[{"sku":"x","quantity":"2"}]}`, 400, "items[0].quantity"},
		{"text-plain", "text/plain", `{"id":"a","customerId":"c","items":[{"sku":"x","quantity":1}]}`, 415, "Content-Type"},
		{"form", "application/x-www-form-urlencoded", `id=a`, 415, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, s.URL()+"/api/orders", tc.contentType, tc.body)
			if r.status != tc.status {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.status)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			var p struct {
				Status int    `json:"status"`
				Field  string `json:"field"`
			}
			if err := json.Unmarshal([]byte(r.body), &p); err != nil {
				t.Fatalf("problem body %q: %v", r.body, err)
			}
			if p.Field != tc.field || p.Status != tc.status {
				t.Errorf("problem = %+v, want field %q status %d", p, tc.field, tc.status)
			}
		})
	}
	if n, err := s.ApproximateCount(context.Background(), "orders"); err != nil || n != 0 {
		t.Errorf("orders queue holds %d messages (err %v), want 0", n, err)
	}
}

// TestBadQueueMessagesArePoisonedOnFirstDelivery puts malformed messages straight on the
// queue and expects each in orders-poison after one delivery, with its reason.
func TestBadQueueMessagesArePoisonedOnFirstDelivery(t *testing.T) {
	var console strings.Builder
	s := stack.StartT(t, stack.Options{NoFulfilment: true, Console: &syncWriter{b: &console}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if err := s.Enqueue(ctx, "orders", `{"id": "broken",`); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "orders", `{"id":"no-pk","items":[{"sku":"x","quantity":1}]}`); err != nil {
		t.Fatal(err)
	}
	// Raw text where the host expects base64: the host poisons it without invoking.
	if err := s.EnqueueRaw(ctx, "orders", `{"id":"raw","customerId":"c","items":[]} not base64!`); err != nil {
		t.Fatal(err)
	}

	msgs := eventually(t, 30*time.Second, func() ([]stack.QueueMessage, bool) {
		m, err := s.Peek(ctx, "orders-poison")
		return m, err == nil && len(m) == 3
	})
	reasons := map[string]bool{}
	raw := 0
	for _, m := range msgs {
		var pm struct {
			Reason       string `json:"reason"`
			DequeueCount int    `json:"dequeueCount"`
			Message      string `json:"message"`
		}
		if json.Unmarshal([]byte(m.Text), &pm) == nil && pm.Reason != "" {
			reasons[pm.Reason] = true
			if pm.DequeueCount != 1 {
				t.Errorf("%s poisoned at dequeue count %d, want 1", pm.Reason, pm.DequeueCount)
			}
			continue
		}
		raw++
	}
	for _, want := range []string{"invalid-json", "missing-partition-key"} {
		if !reasons[want] {
			t.Errorf("no poison message with reason %q (got %v)", want, reasons)
		}
	}
	if raw != 1 {
		t.Errorf("%d bare poison copies, want 1 (the undecodable message)", raw)
	}
	// The host copies a message to the poison queue before it deletes the original, so
	// the original may still be there for a moment.
	waitQueueEmpty(t, s, "orders")
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestPutRefusesWhatAMapWouldMerge: duplicate members in a PUT body are refused as they
// are on POST, not merged with the last one winning.
func TestPutRefusesWhatAMapWouldMerge(t *testing.T) {
	s := stack.StartT(t, stack.Options{NoFulfilment: true})
	for _, body := range []string{
		`{"id":"other","id":"o-dup","items":[{"sku":"apple","quantity":1}]}`,
		`{"items":[{"sku":"apple","quantity":1}],"items":[{"sku":"pear","quantity":2}]}`,
	} {
		r := do(t, http.MethodPut, s.URL()+"/api/customers/c-dup/orders/o-dup", "application/json", body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "more than once") {
			t.Errorf("PUT %s = %d %s, want 400 naming the duplicate", body, r.status, r.body)
		}
	}
	if _, ok, _ := s.Item(context.Background(), "c-dup", "o-dup"); ok {
		t.Error("an order with duplicate members was stored")
	}
}
