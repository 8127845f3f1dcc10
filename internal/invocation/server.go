package invocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Trigger is the kind of trigger a function is bound to. It decides how a failure is
// reported: an HTTP function always answers the caller through its HTTP output, while a
// queue function fails the invocation so the host redelivers the message.
type Trigger int

const (
	HTTPTrigger Trigger = iota + 1
	QueueTrigger
)

// Function handles one invocation.
type Function interface {
	Invoke(ctx context.Context, inv *Invocation) (*Response, error)
}

// FunctionFunc adapts a plain function to Function.
type FunctionFunc func(ctx context.Context, inv *Invocation) (*Response, error)

func (f FunctionFunc) Invoke(ctx context.Context, inv *Invocation) (*Response, error) {
	return f(ctx, inv)
}

// Registration binds a function folder name (the host calls POST /<Name>) to its code.
type Registration struct {
	// Name is the function's folder name, case as on disk.
	Name    string
	Trigger Trigger
	// HTTPOutput is the name of the HTTP output binding in function.json; "res" when empty.
	HTTPOutput string
	Func       Function
}

// Invocation is one call from the host, with the logger and deadline derived for it.
type Invocation struct {
	ID       string
	Function string
	Request  *Request
	Logger   *slog.Logger
	// Deadline is when the host will give up on this invocation, less a safety margin.
	Deadline time.Time

	mu   sync.Mutex
	logs []string
}

// Log records a line the host attaches to the invocation (Application Insights trace,
// category Function.<name>.User) and writes it to the structured log as well. The host
// keeps these lines only when the invocation succeeds, which is why every failure is also
// logged through Logger.
func (inv *Invocation) Log(msg string, args ...any) {
	inv.Logger.Info(msg, args...)
	line := msg
	if len(args) > 0 {
		var b strings.Builder
		b.WriteString(msg)
		for i := 0; i+1 < len(args); i += 2 {
			fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
		}
		line = b.String()
	}
	inv.mu.Lock()
	inv.logs = append(inv.logs, line)
	inv.mu.Unlock()
}

// Remaining is the time left before Deadline.
func (inv *Invocation) Remaining() time.Duration {
	return time.Until(inv.Deadline)
}

// ServerOptions configures a Server. The zero value of each field has a working default.
type ServerOptions struct {
	Logger *slog.Logger
	// FunctionTimeout is host.json's functionTimeout; 5 minutes when zero.
	FunctionTimeout time.Duration
	// SafetyMargin is kept back from FunctionTimeout so a function ends, and says why,
	// before the host cancels it; 5 seconds when zero.
	SafetyMargin time.Duration
	// MaxEnvelopeBytes bounds the envelope read from the host; 8 MiB when zero.
	MaxEnvelopeBytes int64
}

// Server is the HTTP server the Functions host talks to.
type Server struct {
	opts      ServerOptions
	functions map[string]Registration
}

// NewServer returns a Server dispatching to regs. Names are matched case-insensitively,
// as the host's own function lookup is.
func NewServer(opts ServerOptions, regs ...Registration) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FunctionTimeout <= 0 {
		opts.FunctionTimeout = 5 * time.Minute
	}
	if opts.SafetyMargin <= 0 {
		opts.SafetyMargin = 5 * time.Second
	}
	if opts.SafetyMargin >= opts.FunctionTimeout {
		return nil, fmt.Errorf("invocation: safety margin %v must be shorter than the function timeout %v", opts.SafetyMargin, opts.FunctionTimeout)
	}
	if opts.MaxEnvelopeBytes <= 0 {
		opts.MaxEnvelopeBytes = 8 << 20
	}
	s := &Server{opts: opts, functions: map[string]Registration{}}
	for _, r := range regs {
		key := strings.ToLower(r.Name)
		if _, dup := s.functions[key]; dup {
			return nil, fmt.Errorf("invocation: function %q registered twice", r.Name)
		}
		if r.Trigger == HTTPTrigger && r.HTTPOutput == "" {
			r.HTTPOutput = "res"
		}
		s.functions[key] = r
	}
	return s, nil
}

// ServeHTTP answers the host's readiness probe on / and dispatches POST /<FunctionName>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		// The host probes / every 25 ms until any answer arrives, and pings it later;
		// answer at once without touching a dependency.
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	reg, ok := s.functions[strings.ToLower(name)]
	if !ok || strings.Contains(name, "/") {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no function named " + quoteForLog(name)})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "the host invokes functions with POST"})
		return
	}
	s.invoke(w, r, reg)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, reg Registration) {
	start := time.Now()
	id := r.Header.Get("X-Azure-Functions-InvocationId")
	logger := s.opts.Logger.With("function", reg.Name, "invocation_id", id)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxEnvelopeBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			logger.Warn("envelope over the size limit", "limit_bytes", s.opts.MaxEnvelopeBytes)
			s.reject(w, reg, Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("request larger than %d bytes", s.opts.MaxEnvelopeBytes)})
			return
		}
		logger.Warn("envelope could not be read", "err", err)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "envelope could not be read"})
		return
	}
	req, err := DecodeRequest(body)
	if err != nil {
		logger.Warn("envelope rejected", "err", err)
		s.reject(w, reg, Problem{Status: http.StatusBadRequest, Detail: err.Error()})
		return
	}

	deadline := start.Add(s.opts.FunctionTimeout - s.opts.SafetyMargin)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	inv := &Invocation{ID: id, Function: reg.Name, Request: req, Logger: logger, Deadline: deadline}

	resp, err := s.call(ctx, reg, inv)
	elapsed := time.Since(start)
	if err != nil {
		logger.Error("invocation failed", "err", err, "duration_ms", elapsed.Milliseconds())
		if reg.Trigger == HTTPTrigger {
			// The caller still gets a problem document rather than the host's empty 500.
			resp = &Response{Outputs: map[string]any{reg.HTTPOutput: ProblemResponse(Problem{Status: http.StatusInternalServerError, Detail: "the function failed; see the log for invocation " + id})}}
		} else {
			// A non-2xx answer makes the host fail the invocation, so the queue redelivers
			// the message after host.json's visibilityTimeout.
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
	}
	if resp == nil {
		resp = &Response{}
	} else {
		// The function may hand back a Response it shares between invocations; filling in
		// this invocation's logs must not write into it.
		cp := *resp
		resp = &cp
	}
	inv.mu.Lock()
	resp.Logs = append(inv.logs, resp.Logs...)
	inv.mu.Unlock()
	if resp.Outputs == nil {
		resp.Outputs = map[string]any{}
	}
	if resp.Logs == nil {
		resp.Logs = []string{}
	}
	logger.Debug("invocation done", "duration_ms", elapsed.Milliseconds())
	writeJSON(w, http.StatusOK, resp)
}

// call runs the function, turning a panic into an error so one bad invocation never takes
// the process, and with it every other in-flight invocation, down.
func (s *Server) call(ctx context.Context, reg Registration, inv *Invocation) (resp *Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			inv.Logger.Error("[unexpected] function panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return reg.Func.Invoke(ctx, inv)
}

// reject answers an envelope that never reached the function: through the HTTP output for
// an HTTP function, so the caller sees a 4xx instead of the host's 500, and as a non-2xx
// answer for a queue function, so the host keeps the message and eventually poisons it.
func (s *Server) reject(w http.ResponseWriter, reg Registration, p Problem) {
	if reg.Trigger == HTTPTrigger {
		writeJSON(w, http.StatusOK, &Response{Outputs: map[string]any{reg.HTTPOutput: ProblemResponse(p)}, Logs: []string{}})
		return
	}
	writeJSON(w, p.Status, map[string]string{"error": p.Detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"response could not be encoded"}`)
	}
	// The host accepts only application/json or text/json; without this header Go would
	// sniff text/plain and the host would fail the invocation.
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func quoteForLog(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return fmt.Sprintf("%q", s)
}
