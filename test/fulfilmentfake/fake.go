// Package fulfilmentfake is a stand-in for the third-party fulfilment API, on loopback:
// it accepts POST /fulfilments with an Idempotency-Key, and can be scripted to throttle
// (429 with Retry-After in seconds or as a date), fail, stall or be down, so tests can
// check how notify treats an API it does not control. It counts every call.
package fulfilmentfake

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Reply is one scripted answer.
type Reply struct {
	Status  int
	Headers map[string]string
	// Delay holds the answer back, to model a slow API.
	Delay time.Duration
	// Drop closes the connection without answering.
	Drop bool
}

// Call is one request the fake received.
type Call struct {
	At             time.Time
	IdempotencyKey string
	OrderID        string
	Status         int
}

// Server is the fake API.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []Reply
	fallback func() Reply
	calls    []Call
	accepted map[string]int
}

// Start serves the fake on 127.0.0.1 at a free port, or at addr when given.
func Start(addr string) (*Server, error) {
	s := &Server{accepted: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	s.srv = srv
	return s, nil
}

// URL is the API's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the fake.
func (s *Server) Close() { s.srv.CloseClientConnections(); s.srv.Close() }

// Script queues answers, used in order before the default.
func (s *Server) Script(r ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, r...)
}

// SetDefault sets the answer once the script is used up; nil restores 201 Created.
func (s *Server) SetDefault(f func() Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fallback = f
}

// Calls returns every call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Fulfilled returns how many times each idempotency key was accepted (2xx).
func (s *Server) Fulfilled() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.accepted))
	for k, v := range s.accepted {
		out[k] = v
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/fulfilments" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var body struct {
		OrderID string `json:"orderId"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
	key := r.Header.Get("Idempotency-Key")

	s.mu.Lock()
	reply := Reply{Status: http.StatusCreated}
	switch {
	case len(s.script) > 0:
		reply, s.script = s.script[0], s.script[1:]
	case s.fallback != nil:
		reply = s.fallback()
	}
	status := reply.Status
	if !reply.Drop && status >= 200 && status < 300 {
		if s.accepted[key] > 0 {
			// The real API answers a repeated key with the fulfilment it already holds.
			status = http.StatusConflict
		} else {
			s.accepted[key]++
		}
	}
	if reply.Drop {
		status = 0
	}
	s.calls = append(s.calls, Call{At: time.Now(), IdempotencyKey: key, OrderID: body.OrderID, Status: status})
	s.mu.Unlock()

	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	for k, v := range reply.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"orderId":` + mustJSON(body.OrderID) + `}`))
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
