package invocation

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDecodeDispatchEncode measures one queue invocation through the server: the
// host's envelope is read and decoded, the function decodes its message and metadata, and
// the answer with a queue output and a log line is encoded.
func BenchmarkDecodeDispatchEncode(b *testing.B) {
	type order struct {
		OrderID    string  `json:"orderId"`
		CustomerID string  `json:"customerId"`
		Total      float64 `json:"total"`
	}
	fn := FunctionFunc(func(_ context.Context, inv *Invocation) (*Response, error) {
		m, err := inv.Request.QueueTrigger("msg")
		if err != nil {
			return nil, err
		}
		var o order
		if err := json.Unmarshal([]byte(m.Text), &o); err != nil {
			return nil, err
		}
		inv.Log("processed", "order", o.OrderID, "dequeue_count", m.DequeueCount)
		out, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		return &Response{Outputs: map[string]any{"out": QueueMessageValue(out)}}, nil
	})
	s := newTestServer(b, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	envelope := []byte(realQueueEnvelope)

	b.ReportAllocs()
	b.SetBytes(int64(len(envelope)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/process", bytes.NewReader(envelope))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("X-Azure-Functions-InvocationId", testInvocationID)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
	}
}
