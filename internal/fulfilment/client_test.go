package fulfilment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// reply is one canned answer of the fake API.
type reply struct {
	status int
	header map[string]string
	body   string
}

type seenRequest struct {
	Method, Path, RemoteAddr string
	Header                   http.Header
	Body                     []byte
}

// fakeAPI answers each request with the next reply, repeating the last one.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	replies []reply
	seen    []seenRequest
	block   chan struct{} // when set, requests wait for it or their own end
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("reading request body: %v", err)
	}
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{Method: r.Method, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Header: r.Header.Clone(), Body: body})
	rep := reply{status: http.StatusCreated}
	if n := len(f.replies); n > 0 {
		rep = f.replies[0]
		if n > 1 {
			f.replies = f.replies[1:]
		}
	}
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (f *fakeAPI) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// syncBuffer collects log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	api    *fakeAPI
	srv    *httptest.Server
	client *Client
	logs   *syncBuffer
	logger *slog.Logger
}

func newFixture(t *testing.T, replies []reply, mod func(*resilience.DependencyOptions)) *fixture {
	t.Helper()
	api := &fakeAPI{t: t, replies: replies}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	opts := resilience.DependencyOptions{
		Name:               "fulfilment",
		Logger:             slog.New(slog.DiscardHandler),
		OperationTimeout:   60 * time.Second,
		ThrottleMaxRetries: 0,
		ThrottleMaxWait:    50 * time.Second,
		ThrottleBackoff:    time.Millisecond,
		ThrottleBackoffMax: time.Millisecond,
		MaxConcurrency:     4,
		Breaker:            config.BreakerConfig{FailureRate: 0.5, MinRequests: 1000, Window: time.Minute, Delay: time.Minute, SuccessThreshold: 1},
	}
	if mod != nil {
		mod(&opts)
	}
	logs := &syncBuffer{}
	return &fixture{
		api: api, srv: srv, logs: logs,
		logger: slog.New(slog.NewJSONHandler(logs, nil)),
		client: New(Options{
			BaseURL:        srv.URL + "/api/",
			HTTPClient:     srv.Client(),
			Dependency:     resilience.NewDependency(opts),
			Logger:         slog.New(slog.DiscardHandler),
			AttemptTimeout: 5 * time.Second,
		}),
	}
}

var req1 = Request{OrderID: "order-1", CustomerID: "cust-1"}

var co = resilience.CallOptions{MaxWait: time.Second}

func (f *fixture) fulfil(r Request) error {
	return f.client.Fulfil(context.Background(), r, co, f.logger)
}

func asError(t *testing.T, err error) *resilience.Error {
	t.Helper()
	e, ok := resilience.AsError(err)
	if !ok {
		t.Fatalf("error %T %v is not a *resilience.Error", err, err)
	}
	return e
}

func TestFulfilSendsTheRequest(t *testing.T) {
	f := newFixture(t, nil, nil)
	if err := f.fulfil(req1); err != nil {
		t.Fatalf("Fulfil: %v", err)
	}
	reqs := f.api.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/api/fulfilments" {
		t.Errorf("request %s %s, want POST /api/fulfilments", r.Method, r.Path)
	}
	if got := r.Header.Get("Idempotency-Key"); got != "order-1" {
		t.Errorf("Idempotency-Key = %q, want the order id", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var body Request
	if err := json.Unmarshal(r.Body, &body); err != nil || body != req1 {
		t.Errorf("body %s (%v), want %+v", r.Body, err, req1)
	}
	if f.client.Dependency() == nil {
		t.Error("Dependency() = nil")
	}
}

func TestFulfilSuccessStatuses(t *testing.T) {
	for _, status := range []int{200, 201, 202, 204, 409} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFixture(t, []reply{{status: status, body: `{"detail":"whatever"}`}}, nil)
			if err := f.fulfil(req1); err != nil {
				t.Errorf("Fulfil = %v, want success", err)
			}
			if n := len(f.api.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFulfilRetriesThrottlesWithTheSameKey(t *testing.T) {
	f := newFixture(t, []reply{
		{status: 429, header: map[string]string{"Retry-After": "0"}},
		{status: 503, header: map[string]string{"Retry-After": "0"}},
		{status: 201},
	}, func(o *resilience.DependencyOptions) { o.ThrottleMaxRetries = 5 })
	if err := f.fulfil(req1); err != nil {
		t.Fatalf("Fulfil = %v, want success after two throttles", err)
	}
	reqs := f.api.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.Header.Get("Idempotency-Key") != "order-1" || !bytes.Equal(r.Body, reqs[0].Body) {
			t.Errorf("request %d: key %q body %s; every retry must repeat the first", i, r.Header.Get("Idempotency-Key"), r.Body)
		}
	}
	if c := f.client.Dependency().State().Counts; c.Retries != 2 || c.Throttled != 2 {
		t.Errorf("counts = %+v", c)
	}
}

func TestFulfilClassifiesWaitHints(t *testing.T) {
	future := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name     string
		rep      reply
		reason   string // of the attempt's error, as the retry policy saw it
		hinted   bool
		min, max time.Duration
		warns    bool
	}{
		{"429 seconds", reply{status: 429, header: map[string]string{"Retry-After": "7"}}, resilience.ReasonThrottled, true, 7 * time.Second, 7 * time.Second, false},
		{"429 date", reply{status: 429, header: map[string]string{"Retry-After": future}}, resilience.ReasonThrottled, true, 20 * time.Second, 31 * time.Second, false},
		{"429 past date", reply{status: 429, header: map[string]string{"Retry-After": "Mon, 02 Jan 2006 15:04:05 GMT"}}, resilience.ReasonThrottled, false, 0, 0, true},
		{"429 junk", reply{status: 429, header: map[string]string{"Retry-After": "a while"}}, resilience.ReasonThrottled, false, 0, 0, true},
		{"429 NaN ms", reply{status: 429, header: map[string]string{"Retry-After-Ms": "NaN"}}, resilience.ReasonThrottled, false, 0, 0, true},
		{"429 ms", reply{status: 429, header: map[string]string{"x-ms-retry-after-ms": "1500"}}, resilience.ReasonThrottled, true, 1500 * time.Millisecond, 1500 * time.Millisecond, false},
		{"429 no hint", reply{status: 429}, resilience.ReasonThrottled, false, 0, 0, false},
		{"503 seconds", reply{status: 503, header: map[string]string{"Retry-After": "4"}}, resilience.ReasonThrottled, true, 4 * time.Second, 4 * time.Second, false},
		{"503 date", reply{status: 503, header: map[string]string{"Retry-After": future}}, resilience.ReasonThrottled, true, 20 * time.Second, 31 * time.Second, false},
		{"503 junk", reply{status: 503, header: map[string]string{"Retry-After": "-5"}}, "fulfilment-503", false, 0, 0, true},
		{"503 no hint", reply{status: 503}, "fulfilment-503", false, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.rep.body = strings.Repeat("x", 1000)
			f := newFixture(t, []reply{tc.rep}, nil)
			e := asError(t, f.fulfil(req1))
			if e.Kind != resilience.Transient || e.Status != tc.rep.status {
				t.Errorf("error = %+v, want transient with status %d", e, tc.rep.status)
			}
			if e.Hinted != tc.hinted || e.RetryAfter < tc.min || e.RetryAfter > tc.max {
				t.Errorf("RetryAfter %v hinted %v, want %v to %v hinted %v", e.RetryAfter, e.Hinted, tc.min, tc.max, tc.hinted)
			}
			// What the attempt returned: a throttle keeps its reason under the
			// retry policy's verdict; anything else comes back as it was.
			attempt := e
			if tc.reason == resilience.ReasonThrottled {
				if e.Reason != resilience.ReasonRetriesNoMore {
					t.Errorf("Reason = %q, want %q (no retries configured)", e.Reason, resilience.ReasonRetriesNoMore)
				}
				attempt = asError(t, e.Err)
			}
			if attempt.Reason != tc.reason {
				t.Errorf("attempt reason = %q, want %q", attempt.Reason, tc.reason)
			}
			logs := f.logs.String()
			if warned := strings.Contains(logs, "unusable wait hint"); warned != tc.warns {
				t.Errorf("warned = %v, want %v; logs: %s", warned, tc.warns, logs)
			}
			if n := len(f.api.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFulfilThrottleBeyondTheDeadline(t *testing.T) {
	f := newFixture(t, []reply{{status: 429, header: map[string]string{"Retry-After": "120"}}},
		func(o *resilience.DependencyOptions) { o.ThrottleMaxRetries = 5; o.ThrottleMaxWait = 59 * time.Second })
	e := asError(t, f.fulfil(req1))
	if e.Reason != resilience.ReasonHintTooLong || e.RetryAfter != 120*time.Second || !e.Hinted {
		t.Errorf("error = %+v, want %s with the 120s hint", e, resilience.ReasonHintTooLong)
	}
	if n := len(f.api.requests()); n != 1 {
		t.Errorf("%d requests, want 1: a hint past the deadline is not waited for", n)
	}
}

func TestFulfilWarnsOncePerCall(t *testing.T) {
	f := newFixture(t, []reply{{status: 429, header: map[string]string{"Retry-After": "later"}}},
		func(o *resilience.DependencyOptions) { o.ThrottleMaxRetries = 3 })
	e := asError(t, f.fulfil(req1))
	if e.Reason != resilience.ReasonRetriesNoMore {
		t.Errorf("Reason = %q", e.Reason)
	}
	if n := len(f.api.requests()); n != 4 {
		t.Errorf("%d requests, want 4 (1 + 3 retries on the client's own backoff)", n)
	}
	if n := strings.Count(f.logs.String(), "unusable wait hint"); n != 1 {
		t.Errorf("%d warnings for one call, want 1", n)
	}
	_ = f.fulfil(req1)
	if n := strings.Count(f.logs.String(), "unusable wait hint"); n != 2 {
		t.Errorf("%d warnings for two calls, want 2", n)
	}
	if !strings.Contains(f.logs.String(), `Retry-After=\"later\"`) {
		t.Errorf("the warning does not quote the header: %s", f.logs.String())
	}
}

func TestFulfilErrorStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		kind   resilience.Kind
	}{
		{400, resilience.Permanent}, {401, resilience.Permanent}, {404, resilience.Permanent}, {413, resilience.Permanent}, {422, resilience.Permanent},
		{408, resilience.Transient}, {500, resilience.Transient}, {502, resilience.Transient}, {504, resilience.Transient},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f := newFixture(t, []reply{{status: tc.status, body: "nope"}}, func(o *resilience.DependencyOptions) { o.ThrottleMaxRetries = 5 })
			e := asError(t, f.fulfil(req1))
			if e.Kind != tc.kind || e.Reason != fmt.Sprintf("fulfilment-%d", tc.status) || e.Status != tc.status {
				t.Errorf("error = %+v, want %v fulfilment-%d", e, tc.kind, tc.status)
			}
			if n := len(f.api.requests()); n != 1 {
				t.Errorf("%d requests, want 1: only throttles are retried here", n)
			}
		})
	}
}

func TestFulfilDrainsBodies(t *testing.T) {
	big := strings.Repeat("b", 32<<10) // under the client's 64 KiB drain limit
	var replies []reply
	for _, status := range []int{201, 409, 429, 503, 400, 500, 200, 429} {
		replies = append(replies, reply{status: status, body: big, header: map[string]string{"Retry-After": "1"}})
	}
	f := newFixture(t, replies, nil)
	for range replies {
		_ = f.fulfil(req1)
	}
	reqs := f.api.requests()
	if len(reqs) != len(replies) {
		t.Fatalf("%d requests, want %d", len(reqs), len(replies))
	}
	// A body read to its end lets the connection go back to the pool: every request
	// then arrives on the first connection.
	for i, r := range reqs {
		if r.RemoteAddr != reqs[0].RemoteAddr {
			t.Errorf("request %d came from %s, the first from %s: the connection was not reused", i, r.RemoteAddr, reqs[0].RemoteAddr)
		}
	}
}

func TestFulfilAttemptTimeout(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.api.block = make(chan struct{})
	defer close(f.api.block)
	f.client.attemptTimeout = 50 * time.Millisecond
	e := asError(t, f.fulfil(req1))
	if e.Kind != resilience.Transient || e.Reason != "fulfilment-timeout" {
		t.Errorf("error = %+v, want transient fulfilment-timeout", e)
	}
}

func TestFulfilUnreachable(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.srv.Close() // nothing listens on the address any more
	e := asError(t, f.fulfil(req1))
	if e.Kind != resilience.Transient || e.Reason != "fulfilment-unreachable" {
		t.Errorf("error = %+v, want transient fulfilment-unreachable", e)
	}
}

func TestFulfilBadBaseURL(t *testing.T) {
	dep := resilience.NewDependency(resilience.DependencyOptions{
		Logger: slog.New(slog.DiscardHandler), OperationTimeout: time.Second, MaxConcurrency: 1,
		Breaker: config.BreakerConfig{FailureRate: 0.5, MinRequests: 10, Window: time.Minute, Delay: time.Second, SuccessThreshold: 1},
	})
	c := New(Options{BaseURL: "://no-scheme", Dependency: dep, AttemptTimeout: time.Second})
	e := asError(t, c.Fulfil(context.Background(), req1, co, slog.New(slog.DiscardHandler)))
	if e.Kind != resilience.Permanent || e.Reason != "bad-request-url" {
		t.Errorf("error = %+v, want permanent bad-request-url", e)
	}
}

func TestNewDefaultHTTPClient(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := New(Options{BaseURL: f.srv.URL, Dependency: f.client.dep, AttemptTimeout: 5 * time.Second})
	if c.http == nil || c.http == http.DefaultClient {
		t.Fatal("New without an HTTP client must build its own")
	}
	if err := c.Fulfil(context.Background(), req1, co, f.logger); err != nil {
		t.Fatalf("Fulfil: %v", err)
	}
	if reqs := f.api.requests(); len(reqs) != 1 || reqs[0].Path != "/fulfilments" {
		t.Errorf("requests = %+v, want one to /fulfilments", reqs)
	}
}
