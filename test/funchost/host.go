// Package funchost imitates the Azure Functions host closely enough to run the real
// handler binary on a machine without Azure Functions Core Tools. It follows the host's
// behaviour as documented in the project's wire-level reference, not the handler's
// convenience: strings in Data and Metadata arrive JSON-encoded a second time, queue
// messages are base64-decoded and undecodable ones go to the poison queue without an
// invocation, a non-2xx reply fails the invocation and loses its logs, outputs are
// written only after success, and string outputs that happen to be valid base64 are
// decoded to bytes.
//
// What it leaves out: triggers other than HTTP and Storage queues, dynamic HTTP
// throttles, the 10-minute visibility renewal's exact timing under load, and the real
// host's restart of the whole host after a function timeout (the imitation fails the
// invocation and keeps the same handler process).
package funchost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHostVersion is the version the imitation reports in X-Azure-Functions-HostVersion.
const DefaultHostVersion = "4.1037.1.23605"

// Options configures a Host.
type Options struct {
	// ScriptRoot is the folder holding host.json; function folders are its direct
	// subfolders.
	ScriptRoot string
	// HTTPAddr is where HTTP triggers are served, e.g. 127.0.0.1:7071. Port 0 picks one.
	HTTPAddr string
	// Env holds the app settings, over the process environment; the handler gets both.
	Env map[string]string
	// Logger receives the host's logs, including the handler's console lines.
	Logger *slog.Logger
	// Console, when set, receives the handler's raw stdout and stderr lines instead of
	// Logger, which would otherwise log each line as the host does.
	Console io.Writer
	// HostVersion is reported to the handler; DefaultHostVersion when empty.
	HostVersion string
	// EnforceKeys makes authLevel function and admin require a key, as Azure does. Core
	// Tools does not enforce keys locally, and neither does the imitation by default.
	EnforceKeys bool
	// FunctionKey and MasterKey are the accepted keys when EnforceKeys is set.
	FunctionKey, MasterKey string
}

// Stats counts what the host did.
type Stats struct {
	Invocations     int64 // calls made to the handler
	Failures        int64 // invocations that failed
	Poisoned        int64 // messages moved to a poison queue
	DecodeFailures  int64 // messages poisoned because they were not valid base64
	MessagesWritten int64 // messages written by queue output bindings
	HTTPRequests    int64 // requests received on the HTTP front
	HTTPThrottled   int64 // requests answered 429 by maxOutstandingRequests
	Restarts        int64 // times the handler was started again after it exited
	Timeouts        int64 // invocations that ran past functionTimeout
}

// Host is a running imitation of the Functions host with one handler process.
type Host struct {
	root        string
	cfg         *hostConfig
	functions   []*function
	env         map[string]string
	logger      *slog.Logger
	consoleOut  io.Writer
	consoleMu   sync.Mutex
	hostVersion string
	opts        Options

	client *http.Client

	mu      sync.Mutex
	current *worker
	ready   chan struct{} // closed while current is usable; replaced during a restart
	stopped bool

	httpSrv  *http.Server
	listener net.Listener
	routes   []*route
	httpSem  chan struct{}
	waiting  atomic.Int64

	queues    *queueClients
	pollCtx   context.Context
	stopPolls context.CancelFunc
	pollers   sync.WaitGroup
	inflight  sync.WaitGroup
	wake      map[string]chan struct{} // queue name → wake-up for its listener

	stats struct {
		invocations, failures, poisoned, decodeFailures, written, httpRequests, httpThrottled, restarts, timeouts atomic.Int64
	}
}

// Start discovers the functions under o.ScriptRoot, starts the handler, waits for it to be
// ready, and begins serving HTTP triggers and polling queue triggers.
func Start(ctx context.Context, o Options) (*Host, error) {
	root, err := filepath.Abs(o.ScriptRoot)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	maps.Copy(env, o.Env)
	cfg, err := loadHostConfig(root, env)
	if err != nil {
		return nil, err
	}
	fns, err := loadFunctions(root)
	if err != nil {
		return nil, err
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("no functions found: each needs <script root>/<name>/function.json under %s", root)
	}
	h := &Host{
		root: root, cfg: cfg, functions: fns, env: env, logger: o.Logger, consoleOut: o.Console,
		hostVersion: o.HostVersion, opts: o, ready: make(chan struct{}), wake: map[string]chan struct{}{},
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.hostVersion == "" {
		h.hostVersion = DefaultHostVersion
	}
	// The host's client to the handler: no cookies, no redirects followed, and a timeout
	// of functionTimeout plus one minute.
	timeout := time.Duration(0)
	if cfg.FunctionTimeout > 0 {
		timeout = cfg.FunctionTimeout + time.Minute
	}
	h.client = &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, f := range fns {
		state := "enabled"
		if f.Disabled {
			state = "disabled"
		}
		h.logger.Info("found function", "function", f.Name, "trigger", f.Trigger.Type, "state", state)
	}

	w, err := h.startWorker(ctx)
	if err != nil {
		return nil, err
	}
	h.current = w
	close(h.ready)
	go h.supervise(w)

	if err := h.startHTTP(o.HTTPAddr); err != nil {
		h.shutdownWorker(5 * time.Second)
		return nil, err
	}
	h.pollCtx, h.stopPolls = context.WithCancel(context.Background())
	if err := h.startQueues(); err != nil {
		h.stopPolls()
		_ = h.httpSrv.Close()
		h.shutdownWorker(5 * time.Second)
		return nil, err
	}
	return h, nil
}

// URL is the HTTP front, e.g. http://127.0.0.1:7071.
func (h *Host) URL() string {
	if h.listener == nil {
		return ""
	}
	return "http://" + h.listener.Addr().String()
}

// HandlerPID is the process id of the handler now running, or 0 while it restarts.
func (h *Host) HandlerPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.current == nil || h.current.cmd.Process == nil {
		return 0
	}
	return h.current.cmd.Process.Pid
}

// KillHandler kills the handler process, as a crash would; the host starts a new one.
func (h *Host) KillHandler() {
	h.mu.Lock()
	w := h.current
	h.mu.Unlock()
	if w != nil {
		w.kill()
	}
}

// Stats returns the host's counters.
func (h *Host) Stats() Stats {
	return Stats{
		Invocations:     h.stats.invocations.Load(),
		Failures:        h.stats.failures.Load(),
		Poisoned:        h.stats.poisoned.Load(),
		DecodeFailures:  h.stats.decodeFailures.Load(),
		MessagesWritten: h.stats.written.Load(),
		HTTPRequests:    h.stats.httpRequests.Load(),
		HTTPThrottled:   h.stats.httpThrottled.Load(),
		Restarts:        h.stats.restarts.Load(),
		Timeouts:        h.stats.timeouts.Load(),
	}
}

// supervise restarts the handler when it exits while the host runs, as the host does
// after logging the exit as an error.
func (h *Host) supervise(w *worker) {
	for {
		<-w.exited
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			return
		}
		h.ready = make(chan struct{})
		h.current = nil
		h.mu.Unlock()
		h.logger.Error("the custom handler process exited; restarting it", "err", w.err)
		h.stats.restarts.Add(1)
		var next *worker
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), initializationTimeout+5*time.Second)
			var err error
			next, err = h.startWorker(ctx)
			cancel()
			if err == nil {
				break
			}
			h.logger.Error("restarting the custom handler failed", "err", err, "attempt", attempt+1)
			h.mu.Lock()
			stopped := h.stopped
			h.mu.Unlock()
			if stopped {
				return
			}
			time.Sleep(min(time.Duration(attempt+1)*time.Second, 10*time.Second))
		}
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			next.stop(5 * time.Second)
			return
		}
		h.current = next
		close(h.ready)
		h.mu.Unlock()
		w = next
	}
}

// worker waits until a handler process is ready and returns it.
func (h *Host) worker(ctx context.Context) (*worker, error) {
	for {
		h.mu.Lock()
		ready, w, stopped := h.ready, h.current, h.stopped
		h.mu.Unlock()
		if stopped {
			return nil, errors.New("the host is stopping")
		}
		if w != nil {
			return w, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Stop stops taking work, lets running invocations finish while ctx allows, then stops
// the handler with SIGTERM (SIGKILL if it outlives ctx).
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	h.stopPolls()
	h.pollers.Wait()
	httpErr := h.httpSrv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { h.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	grace := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		grace = max(time.Until(dl), 100*time.Millisecond)
	}
	h.shutdownWorker(grace)
	h.client.CloseIdleConnections()
	if errors.Is(httpErr, context.DeadlineExceeded) {
		_ = h.httpSrv.Close()
	}
	return nil
}

func (h *Host) shutdownWorker(grace time.Duration) {
	h.mu.Lock()
	h.stopped = true
	w := h.current
	h.mu.Unlock()
	if w != nil {
		w.stop(grace)
	}
}
