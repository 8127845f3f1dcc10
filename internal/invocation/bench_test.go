package invocation

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchOrderFunction is a queue function doing what process does with the envelope: it
// decodes its message and metadata, logs one line, and answers with a queue output.
func benchOrderFunction() Function {
	type order struct {
		OrderID    string  `json:"orderId"`
		CustomerID string  `json:"customerId"`
		Total      float64 `json:"total"`
	}
	return FunctionFunc(func(_ context.Context, inv *Invocation) (*Response, error) {
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
}

// BenchmarkDecodeDispatchEncode measures one queue invocation through the server: the
// host's envelope is read and decoded, the function decodes its message and metadata, and
// the answer with a queue output and a log line is encoded.
func BenchmarkDecodeDispatchEncode(b *testing.B) {
	s := newTestServer(b, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: benchOrderFunction()})
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

// BenchmarkDecodeDispatchEncodeNoHTTP is the same invocation without what httptest
// adds per call (parsing a request line into a new request, a recorder and its
// buffers): one request whose body is rewound, and a writer that keeps only the
// status. What is left is the server's own work, envelope to answer, without I/O.
func BenchmarkDecodeDispatchEncodeNoHTTP(b *testing.B) {
	s := newTestServer(b, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: benchOrderFunction()})
	envelope := []byte(realQueueEnvelope)
	body := bytes.NewReader(envelope)
	req, err := http.NewRequest(http.MethodPost, "/process", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", testInvocationID)
	w := &statusWriter{header: http.Header{}}

	b.ReportAllocs()
	b.SetBytes(int64(len(envelope)))
	for b.Loop() {
		body.Reset(envelope)
		req.Body = io.NopCloser(body)
		w.status = 0
		clear(w.header)
		s.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status = %d", w.status)
		}
	}
}

// statusWriter is a ResponseWriter that discards the body.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.header }
func (w *statusWriter) WriteHeader(status int)      { w.status = status }
func (w *statusWriter) Write(p []byte) (int, error) { return len(p), nil }
