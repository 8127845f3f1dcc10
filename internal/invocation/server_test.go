package invocation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testInvocationID = "5b1c9a0e-6f2d-4c3b-8a7e-9d0f1e2c3b4a"

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer(t testing.TB, opts ServerOptions, regs ...Registration) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s, err := NewServer(opts, regs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hostPost sends an invocation the way the host does: POST /<FunctionName> with its
// headers and a JSON envelope.
func hostPost(h http.Handler, path, envelope string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(envelope))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", testInvocationID)
	req.Header.Set("X-Azure-Functions-HostVersion", "4.33.2.22572")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.33.2.22572")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// jsonAnswer checks what the host requires of every answer, a JSON content type and a
// JSON body, and returns the body's members.
func jsonAnswer(t testing.TB, rec *httptest.ResponseRecorder) map[string]json.RawMessage {
	t.Helper()
	mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", rec.Header().Get("Content-Type"))
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &members); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body.String(), err)
	}
	return members
}

type invocationAnswer struct {
	Outputs     map[string]json.RawMessage
	Logs        []string
	ReturnValue json.RawMessage
}

// invocationOK checks a successful invocation answer: 200, and exactly the members
// Outputs (an object), Logs (an array, never null) and ReturnValue.
func invocationOK(t testing.TB, rec *httptest.ResponseRecorder) invocationAnswer {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	members := jsonAnswer(t, rec)
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"Logs", "Outputs", "ReturnValue"}) {
		t.Fatalf("answer members = %v, want Logs, Outputs, ReturnValue", keys)
	}
	if b := bytes.TrimSpace(members["Outputs"]); len(b) == 0 || b[0] != '{' {
		t.Errorf("Outputs = %s, want an object", b)
	}
	if b := bytes.TrimSpace(members["Logs"]); len(b) == 0 || b[0] != '[' {
		t.Errorf("Logs = %s, want an array", b)
	}
	var a invocationAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

type wireHTTPOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func httpOutput(t testing.TB, a invocationAnswer, name string) wireHTTPOutput {
	t.Helper()
	raw, ok := a.Outputs[name]
	if !ok {
		t.Fatalf("Outputs lacks %q: %v", name, a.Outputs)
	}
	var out wireHTTPOutput
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("Outputs[%q] = %s: %v", name, raw, err)
	}
	return out
}

func problemOf(t testing.TB, out wireHTTPOutput) Problem {
	t.Helper()
	if out.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("problem output Content-Type = %q", out.Headers["Content-Type"])
	}
	var p Problem
	if err := json.Unmarshal([]byte(out.Body), &p); err != nil {
		t.Fatalf("problem body %q: %v", out.Body, err)
	}
	if p.Status != out.StatusCode {
		t.Errorf("problem status %d differs from the output's %d", p.Status, out.StatusCode)
	}
	return p
}

// recorder is a Function that remembers its invocations.
type recorder struct {
	mu    sync.Mutex
	calls []*Invocation
	reply func(ctx context.Context, inv *Invocation) (*Response, error)
}

func (r *recorder) Invoke(ctx context.Context, inv *Invocation) (*Response, error) {
	r.mu.Lock()
	r.calls = append(r.calls, inv)
	r.mu.Unlock()
	if r.reply == nil {
		return &Response{}, nil
	}
	return r.reply(ctx, inv)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func TestServerAnswersReadinessProbe(t *testing.T) {
	fn := &recorder{}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s / = %d, want 200", method, rec.Code)
		}
		if method != http.MethodHead {
			jsonAnswer(t, rec)
		}
	}
	if fn.count() != 0 {
		t.Error("the probe invoked a function")
	}
}

func TestServerDispatchesByNameCaseInsensitively(t *testing.T) {
	process, write := &recorder{}, &recorder{}
	s := newTestServer(t, ServerOptions{},
		Registration{Name: "Process", Trigger: QueueTrigger, Func: process},
		Registration{Name: "write", Trigger: HTTPTrigger, Func: write})
	for _, path := range []string{"/Process", "/process", "/PROCESS", "/pRoCeSs"} {
		invocationOK(t, hostPost(s, path, realQueueEnvelope))
	}
	if got := process.count(); got != 4 {
		t.Fatalf("process ran %d times, want 4", got)
	}
	if write.count() != 0 {
		t.Error("a queue envelope reached the HTTP function")
	}
	inv := process.calls[0]
	if inv.Function != "Process" || inv.ID != testInvocationID {
		t.Errorf("invocation Function = %q, ID = %q", inv.Function, inv.ID)
	}
	m, err := inv.Request.QueueTrigger("msg")
	if err != nil || m.Text != realQueueText || m.DequeueCount != 5 {
		t.Errorf("function saw message %+v, %v", m, err)
	}
	invocationOK(t, hostPost(s, "/WRITE", realHTTPEnvelope))
	if write.count() != 1 {
		t.Errorf("write ran %d times, want 1", write.count())
	}
}

func TestServerUnknownFunction(t *testing.T) {
	fn := &recorder{}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	for _, path := range []string{"/nope", "/process/extra", "/process/", "//process", "/api/process"} {
		rec := hostPost(s, path, realQueueEnvelope)
		if rec.Code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", path, rec.Code)
		}
		if _, ok := jsonAnswer(t, rec)["error"]; !ok {
			t.Errorf("POST %s: answer %s has no error", path, rec.Body)
		}
	}
	if fn.count() != 0 {
		t.Errorf("function ran %d times for unknown paths", fn.count())
	}
}

func TestServerRejectsOtherMethods(t *testing.T) {
	fn := &recorder{}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, "/process", strings.NewReader(realQueueEnvelope)))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /process = %d, want 405", method, rec.Code)
		}
		if allow := rec.Header().Get("Allow"); allow != http.MethodPost {
			t.Errorf("%s /process Allow = %q, want POST", method, allow)
		}
		jsonAnswer(t, rec)
	}
	if fn.count() != 0 {
		t.Error("a non-POST request invoked the function")
	}
}

func TestServerAnswerCarriesOutputsLogsAndReturnValue(t *testing.T) {
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		inv.Log("charged", "order", "o-1001", "amount", 42.5)
		inv.Log("plain line")
		return &Response{
			Outputs:     map[string]any{"out": QueueMessageValue(`{"orderId":"o-1001"}`)},
			Logs:        []string{"from the response"},
			ReturnValue: "done",
		}, nil
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	a := invocationOK(t, hostPost(s, "/process", realQueueEnvelope))
	if want := []string{"charged order=o-1001 amount=42.5", "plain line", "from the response"}; !slices.Equal(a.Logs, want) {
		t.Errorf("Logs = %q, want %q", a.Logs, want)
	}
	if !jsonEqual(t, string(a.Outputs["out"]), `{"orderId":"o-1001"}`) {
		t.Errorf("Outputs.out = %s", a.Outputs["out"])
	}
	if string(a.ReturnValue) != `"done"` {
		t.Errorf("ReturnValue = %s", a.ReturnValue)
	}
}

func TestServerFillsEmptyAnswer(t *testing.T) {
	for name, reply := range map[string]*Response{"nil response": nil, "empty response": {}} {
		t.Run(name, func(t *testing.T) {
			fn := &recorder{reply: func(context.Context, *Invocation) (*Response, error) { return reply, nil }}
			s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
			a := invocationOK(t, hostPost(s, "/process", realQueueEnvelope))
			if a.Outputs == nil || len(a.Outputs) != 0 || a.Logs == nil || len(a.Logs) != 0 || string(a.ReturnValue) != "null" {
				t.Errorf("answer = %+v", a)
			}
		})
	}
}

// A function may return one Response value for every call; the server must not write
// one invocation's logs into it, or they would leak into the next invocation.
func TestServerLeavesSharedResponseUntouched(t *testing.T) {
	shared := &Response{Outputs: map[string]any{}, Logs: []string{"static"}}
	n := 0
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		n++
		inv.Log("call", "n", n)
		return shared, nil
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	for i := 1; i <= 3; i++ {
		a := invocationOK(t, hostPost(s, "/process", realQueueEnvelope))
		want := []string{"call n=" + strconv.Itoa(i), "static"}
		if !slices.Equal(a.Logs, want) {
			t.Errorf("call %d: Logs = %q, want %q", i, a.Logs, want)
		}
	}
	if !slices.Equal(shared.Logs, []string{"static"}) {
		t.Errorf("shared response Logs became %q", shared.Logs)
	}
}

func TestServerQueueFunctionErrorFailsInvocation(t *testing.T) {
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		inv.Log("about to fail")
		return &Response{Outputs: map[string]any{"out": "must not be written"}}, errors.New("store unavailable")
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	rec := hostPost(s, "/process", realQueueEnvelope)
	if rec.Code >= 200 && rec.Code < 300 {
		t.Fatalf("status = %d; a failed queue invocation must be non-2xx so the host redelivers", rec.Code)
	}
	members := jsonAnswer(t, rec)
	if _, ok := members["Outputs"]; ok {
		t.Errorf("failed invocation answered Outputs: %s", rec.Body)
	}
}

func TestServerHTTPFunctionErrorAnswersProblem(t *testing.T) {
	fn := &recorder{reply: func(context.Context, *Invocation) (*Response, error) {
		return nil, errors.New("store unavailable: secret connection detail")
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "write", Trigger: HTTPTrigger, HTTPOutput: "response", Func: fn})
	a := invocationOK(t, hostPost(s, "/write", realHTTPEnvelope))
	out := httpOutput(t, a, "response")
	if out.StatusCode != http.StatusInternalServerError {
		t.Errorf("statusCode = %d, want 500", out.StatusCode)
	}
	p := problemOf(t, out)
	if !strings.Contains(p.Detail, testInvocationID) {
		t.Errorf("detail %q does not name the invocation", p.Detail)
	}
	if strings.Contains(out.Body, "secret") {
		t.Errorf("problem leaks the error text: %s", out.Body)
	}
}

func TestServerHTTPOutputDefaultsToRes(t *testing.T) {
	fn := &recorder{reply: func(context.Context, *Invocation) (*Response, error) { return nil, errors.New("boom") }}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "write", Trigger: HTTPTrigger, Func: fn})
	a := invocationOK(t, hostPost(s, "/write", realHTTPEnvelope))
	if out := httpOutput(t, a, "res"); out.StatusCode != http.StatusInternalServerError {
		t.Errorf("statusCode = %d", out.StatusCode)
	}
}

func TestServerHTTPFunctionEchoesJSONBody(t *testing.T) {
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		req, err := inv.Request.HTTPTrigger("req")
		if err != nil {
			return nil, err
		}
		body, p := JSONBody(req, 1<<10)
		if p != nil {
			return &Response{Outputs: map[string]any{"res": ProblemResponse(*p)}}, nil
		}
		return &Response{Outputs: map[string]any{"res": JSONResponse(http.StatusCreated, json.RawMessage(body),
			map[string]string{"Location": "/api/orders/" + req.Params["customerId"] + "/" + req.Params["id"]})}}, nil
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "write", Trigger: HTTPTrigger, Func: fn})

	out := httpOutput(t, invocationOK(t, hostPost(s, "/write", realHTTPEnvelope)), "res")
	if out.StatusCode != http.StatusCreated || out.Body != realHTTPBody || out.Headers["Location"] != "/api/orders/c-7/o-1001" {
		t.Errorf("output = %+v", out)
	}
	if out.Headers["Content-Type"] != "application/json" {
		t.Errorf("output Content-Type = %q", out.Headers["Content-Type"])
	}

	out = httpOutput(t, invocationOK(t, hostPost(s, "/write", realHTTPOctetEnvelope)), "res")
	if out.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("octet-stream body: statusCode = %d, want 415", out.StatusCode)
	}
	problemOf(t, out)

	out = httpOutput(t, invocationOK(t, hostPost(s, "/write", strings.Replace(realHTTPGetEnvelope, `"Headers":{"Host":["localhost:7071"]}`,
		`"Headers":{"Host":["localhost:7071"],"Content-Type":["application/json"]}`, 1))), "res")
	if out.StatusCode != http.StatusBadRequest {
		t.Errorf("no body: statusCode = %d, want 400", out.StatusCode)
	}
	problemOf(t, out)

	big := strings.Replace(realHTTPEnvelope, `"Body":"{\"orderId\":\"o-1001\",\"total\":42.5}"`,
		`"Body":"{\"pad\":\"`+strings.Repeat("x", 2<<10)+`\"}"`, 1)
	out = httpOutput(t, invocationOK(t, hostPost(s, "/write", big)), "res")
	if out.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: statusCode = %d, want 413", out.StatusCode)
	}
	problemOf(t, out)
}

func TestServerRecoversFromPanics(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	queue := &recorder{reply: func(context.Context, *Invocation) (*Response, error) { panic("nil map write") }}
	web := &recorder{reply: func(context.Context, *Invocation) (*Response, error) {
		var m map[string]int
		m["x"]++ // a real runtime panic, not a string
		return nil, nil
	}}
	s := newTestServer(t, ServerOptions{Logger: logger},
		Registration{Name: "process", Trigger: QueueTrigger, Func: queue},
		Registration{Name: "write", Trigger: HTTPTrigger, Func: web})

	rec := hostPost(s, "/process", realQueueEnvelope)
	if rec.Code < 300 {
		t.Errorf("queue panic answered %d, want non-2xx", rec.Code)
	}
	jsonAnswer(t, rec)

	out := httpOutput(t, invocationOK(t, hostPost(s, "/write", realHTTPEnvelope)), "res")
	if out.StatusCode != http.StatusInternalServerError {
		t.Errorf("http panic statusCode = %d, want 500", out.StatusCode)
	}
	problemOf(t, out)

	// The server keeps serving after a panic.
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("probe after panics = %d", rec.Code)
	}
	if got := logs.String(); !strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, "nil map write") || !strings.Contains(got, `"stack"`) {
		t.Errorf("panic was not logged with its value and stack: %s", got)
	}
}

func TestServerRejectsBadEnvelope(t *testing.T) {
	queue, web := &recorder{}, &recorder{}
	s := newTestServer(t, ServerOptions{},
		Registration{Name: "process", Trigger: QueueTrigger, Func: queue},
		Registration{Name: "write", Trigger: HTTPTrigger, Func: web})
	for _, body := range []string{``, `not json`, `{"Metadata":{}}`, `{"Data":[]}`, `{"Data":{}}}`} {
		rec := hostPost(s, "/process", body)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("queue envelope %q: status %d, want 400", body, rec.Code)
		}
		jsonAnswer(t, rec)

		out := httpOutput(t, invocationOK(t, hostPost(s, "/write", body)), "res")
		if out.StatusCode != http.StatusBadRequest {
			t.Errorf("http envelope %q: statusCode %d, want 400", body, out.StatusCode)
		}
		problemOf(t, out)
	}
	if queue.count()+web.count() != 0 {
		t.Error("a function ran for an envelope that could not be decoded")
	}
}

func TestServerEnvelopeSizeLimit(t *testing.T) {
	queue, web := &recorder{}, &recorder{}
	limit := int64(len(realHTTPEnvelope))
	s := newTestServer(t, ServerOptions{MaxEnvelopeBytes: limit},
		Registration{Name: "process", Trigger: QueueTrigger, Func: queue},
		Registration{Name: "write", Trigger: HTTPTrigger, Func: web})

	invocationOK(t, hostPost(s, "/write", realHTTPEnvelope)) // exactly the limit
	if web.count() != 1 {
		t.Fatalf("an envelope of exactly the limit did not reach the function")
	}
	tooBig := realHTTPEnvelope + " "
	out := httpOutput(t, invocationOK(t, hostPost(s, "/write", tooBig)), "res")
	if out.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("http statusCode = %d, want 413", out.StatusCode)
	}
	problemOf(t, out)

	rec := hostPost(s, "/process", strings.Repeat(" ", int(limit))+realQueueEnvelope)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("queue status = %d, want 413", rec.Code)
	}
	jsonAnswer(t, rec)
	if queue.count() != 0 || web.count() != 1 {
		t.Error("an oversized envelope reached a function")
	}
}

func TestServerDeadline(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	fn := &recorder{reply: func(ctx context.Context, inv *Invocation) (*Response, error) {
		deadline, hasDeadline = ctx.Deadline()
		if !deadline.Equal(inv.Deadline) {
			t.Errorf("context deadline %v differs from Invocation.Deadline %v", deadline, inv.Deadline)
		}
		if r := inv.Remaining(); r <= 0 || r > 55*time.Second {
			t.Errorf("Remaining = %v, want within (0, 55s]", r)
		}
		return nil, nil
	}}
	s := newTestServer(t, ServerOptions{FunctionTimeout: time.Minute, SafetyMargin: 5 * time.Second},
		Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	before := time.Now()
	invocationOK(t, hostPost(s, "/process", realQueueEnvelope))
	after := time.Now()
	if !hasDeadline {
		t.Fatal("the function's context has no deadline")
	}
	if deadline.Before(before.Add(55*time.Second)) || deadline.After(after.Add(55*time.Second)) {
		t.Errorf("deadline %v is not 55s after the call (between %v and %v)", deadline, before, after)
	}
}

func TestNewServerValidates(t *testing.T) {
	fn := &recorder{}
	if _, err := NewServer(ServerOptions{Logger: discardLogger()},
		Registration{Name: "Process", Trigger: QueueTrigger, Func: fn},
		Registration{Name: "process", Trigger: QueueTrigger, Func: fn}); err == nil {
		t.Error("two functions whose names differ only in case were accepted")
	}
	if _, err := NewServer(ServerOptions{Logger: discardLogger(), FunctionTimeout: 5 * time.Second, SafetyMargin: 5 * time.Second}); err == nil {
		t.Error("a safety margin as long as the function timeout was accepted")
	}
	if _, err := NewServer(ServerOptions{}); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

// TestServerOverRealHTTP runs the server behind a real listener and sends the envelope
// chunked, without Content-Length, as the host probably does.
func TestServerOverRealHTTP(t *testing.T) {
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		m, err := inv.Request.QueueTrigger("msg")
		if err != nil {
			return nil, err
		}
		return &Response{Outputs: map[string]any{"out": QueueMessageValue(m.Text)}}, nil
	}}
	srv := httptest.NewServer(newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn}))
	defer srv.Close()

	// io.MultiReader hides the length, so the client sends the body chunked.
	body := io.MultiReader(strings.NewReader(realQueueEnvelope))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/process", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", testInvocationID)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var a invocationAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, string(a.Outputs["out"]), realQueueText) {
		t.Errorf("Outputs.out = %s", a.Outputs["out"])
	}
	if fn.count() != 1 || fn.calls[0].ID != testInvocationID {
		t.Errorf("invocations = %d", fn.count())
	}
}

func TestInvocationLogIsSafeForConcurrentUse(t *testing.T) {
	fn := &recorder{reply: func(_ context.Context, inv *Invocation) (*Response, error) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { inv.Log("worker", "i", i) })
		}
		wg.Wait()
		return nil, nil
	}}
	s := newTestServer(t, ServerOptions{}, Registration{Name: "process", Trigger: QueueTrigger, Func: fn})
	a := invocationOK(t, hostPost(s, "/process", realQueueEnvelope))
	if len(a.Logs) != 8 {
		t.Errorf("Logs has %d lines, want 8: %q", len(a.Logs), a.Logs)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog handler.
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
