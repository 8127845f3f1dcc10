package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/sluice-dev/sluice/internal/config"
)

// testBreaker opens after minRequests calls of which half failed, and stays open for an
// hour unless a test asks otherwise.
func testBreaker(minRequests int) config.BreakerConfig {
	return config.BreakerConfig{FailureRate: 0.5, MinRequests: minRequests, Window: time.Minute, Delay: time.Hour, SuccessThreshold: 1}
}

func newTestDependency(mod func(*DependencyOptions)) *Dependency {
	o := DependencyOptions{
		Name:               "test",
		Logger:             slog.New(slog.DiscardHandler),
		OperationTimeout:   5 * time.Second,
		ThrottleMaxRetries: 5,
		ThrottleMaxWait:    4 * time.Second,
		ThrottleBackoff:    time.Millisecond,
		ThrottleBackoffMax: 2 * time.Millisecond,
		MaxConcurrency:     4,
		Breaker:            testBreaker(4),
	}
	if mod != nil {
		mod(&o)
	}
	return NewDependency(o)
}

func throttle(hint time.Duration) error {
	return &Error{Kind: Transient, Reason: ReasonThrottled, RetryAfter: hint, Hinted: true, Status: 429, SubStatus: 3200}
}

var wait0 = CallOptions{MaxWait: time.Second}

func mustError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("Do returned nil, want an error")
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("Do returned %T %v, want *Error", err, err)
	}
	return e
}

func TestDependencySuccess(t *testing.T) {
	d := newTestDependency(nil)
	calls := 0
	err := d.Do(context.Background(), wait0, func(ctx context.Context) error {
		calls++
		return ctx.Err()
	})
	if err != nil || calls != 1 {
		t.Fatalf("Do = %v after %d calls, want nil after 1", err, calls)
	}
	c := d.State().Counts
	if c.Calls != 1 || c.Attempts != 1 || c.Successes != 1 || c.Retries != 0 || c.Failures != 0 {
		t.Errorf("counts = %+v", c)
	}
}

func TestDependencyRetriesThrottles(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			d := newTestDependency(nil)
			const hint = 20 * time.Millisecond
			var starts []time.Time
			err := d.Do(context.Background(), wait0, func(ctx context.Context) error {
				starts = append(starts, time.Now())
				if len(starts) <= n {
					return throttle(hint)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Do = %v, want success after %d throttles", err, n)
			}
			if len(starts) != n+1 {
				t.Fatalf("%d attempts, want %d", len(starts), n+1)
			}
			// The server's hint is honoured in full before every retry.
			for i := 1; i < len(starts); i++ {
				if gap := starts[i].Sub(starts[i-1]); gap < hint {
					t.Errorf("retry %d came %v after the throttle, before the %v hint", i, gap, hint)
				}
			}
			c := d.State().Counts
			if c.Calls != 1 || c.Attempts != int64(n+1) || c.Throttled != int64(n) || c.Retries != int64(n) || c.Successes != 1 {
				t.Errorf("counts = %+v", c)
			}
			if c.Failures != 0 || c.Permanent != 0 {
				t.Errorf("throttles counted as failures: %+v", c)
			}
		})
	}
}

func TestDependencyRetriesExhausted(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.ThrottleMaxRetries = 2 })
	attempts := 0
	err := d.Do(context.Background(), wait0, func(context.Context) error {
		attempts++
		return throttle(0)
	})
	e := mustError(t, err)
	if attempts != 3 {
		t.Errorf("%d attempts, want 3 (1 + ThrottleMaxRetries)", attempts)
	}
	if e.Kind != Transient || e.Reason != ReasonRetriesNoMore {
		t.Errorf("error = %v, want transient %s", e, ReasonRetriesNoMore)
	}
	if !e.Hinted || e.Status != 429 || e.SubStatus != 3200 {
		t.Errorf("error lost the dependency's answer: %+v", e)
	}
	if inner, ok := e.Err.(*Error); !ok || inner.Reason != ReasonThrottled {
		t.Errorf("Err = %v, want the last throttle", e.Err)
	}
	if c := d.State().Counts; c.Retries != 2 || c.Throttled != 3 || c.Failures != 0 {
		t.Errorf("counts = %+v", c)
	}

	none := newTestDependency(func(o *DependencyOptions) { o.ThrottleMaxRetries = 0 })
	attempts = 0
	_ = none.Do(context.Background(), wait0, func(context.Context) error { attempts++; return throttle(0) })
	if attempts != 1 {
		t.Errorf("ThrottleMaxRetries 0: %d attempts, want 1", attempts)
	}
}

func TestDependencyOnlyThrottlesAreRetried(t *testing.T) {
	for _, failure := range []error{
		&Error{Kind: Transient, Reason: "cosmos-503", Status: 503},
		&Error{Kind: Permanent, Reason: "cosmos-400", Status: 400},
		&Error{Kind: Rejected, Reason: "elsewhere"},
		errors.New("unclassified"),
	} {
		d := newTestDependency(nil)
		attempts := 0
		err := d.Do(context.Background(), wait0, func(context.Context) error { attempts++; return failure })
		if err == nil || attempts != 1 {
			t.Errorf("%v: Do = %v after %d attempts, want the error after 1", failure, err, attempts)
		}
	}
}

func TestDependencyHintBeyondThrottleMaxWait(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.ThrottleMaxWait = 100 * time.Millisecond })
	attempts := 0
	err := d.Do(context.Background(), wait0, func(context.Context) error {
		attempts++
		return throttle(500 * time.Millisecond)
	})
	e := mustError(t, err)
	if attempts != 1 {
		t.Errorf("%d attempts, want 1: a hint beyond ThrottleMaxWait is not waited for", attempts)
	}
	if e.Kind != Transient || e.Reason != ReasonHintTooLong || e.RetryAfter != 500*time.Millisecond || !e.Hinted {
		t.Errorf("error = %+v, want transient %s keeping the 500ms hint", e, ReasonHintTooLong)
	}
	if c := d.State().Counts; c.Retries != 0 {
		t.Errorf("Retries = %d, want 0", c.Retries)
	}
}

func TestDependencyThrottleMaxWaitIsCumulative(t *testing.T) {
	// Hints of 100ms against a 300ms budget: the first retry fits, the third cannot.
	d := newTestDependency(func(o *DependencyOptions) {
		o.ThrottleMaxWait = 300 * time.Millisecond
		o.ThrottleMaxRetries = 100
	})
	attempts := 0
	err := d.Do(context.Background(), wait0, func(context.Context) error {
		attempts++
		return throttle(100 * time.Millisecond)
	})
	e := mustError(t, err)
	if attempts < 2 || attempts > 3 {
		t.Errorf("%d attempts, want 2 or 3 within a 300ms wait budget", attempts)
	}
	if e.Reason != ReasonRetriesNoMore {
		t.Errorf("Reason = %q, want %q", e.Reason, ReasonRetriesNoMore)
	}
}

func TestDependencyHintBeyondDeadline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		opTO  time.Duration
		hint  time.Duration
		abort bool
	}{
		{"caller deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, 5 * time.Second, 2 * time.Second, true},
		{"operation timeout", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, 300 * time.Millisecond, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDependency(func(o *DependencyOptions) {
				o.OperationTimeout = tc.opTO
				o.ThrottleMaxWait = 10 * time.Second
			})
			ctx, cancel := tc.ctx()
			defer cancel()
			attempts := 0
			err := d.Do(ctx, wait0, func(context.Context) error {
				attempts++
				return throttle(tc.hint)
			})
			e := mustError(t, err)
			if attempts != 1 {
				t.Errorf("%d attempts, want 1: the hint is honoured in full or not at all", attempts)
			}
			if e.Kind != Transient || e.Reason != ReasonHintTooLong || e.RetryAfter != tc.hint || !e.Hinted {
				t.Errorf("error = %+v, want transient %s with the %v hint for the requeue", e, ReasonHintTooLong, tc.hint)
			}
			if ctx.Err() != nil {
				t.Error("Do waited out the deadline instead of returning at once")
			}
		})
	}
}

func TestThrottleDelay(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) {
		o.ThrottleBackoff = 10 * time.Millisecond
		o.ThrottleBackoffMax = 50 * time.Millisecond
	})
	// Without a hint: doubling backoff, capped.
	unhinted := &Error{Kind: Transient, Reason: ReasonThrottled}
	for retries, want := range []time.Duration{10, 20, 40, 50, 50} {
		if got := d.throttleDelay(unhinted, retries); got != want*time.Millisecond {
			t.Errorf("no hint, %d retries: %v, want %v", retries, got, want*time.Millisecond)
		}
	}
	for _, retries := range []int{16, 63, 64, 1000} {
		if got := d.throttleDelay(unhinted, retries); got != 50*time.Millisecond {
			t.Errorf("no hint, %d retries: %v, want the 50ms cap", retries, got)
		}
	}
	if got := d.throttleDelay(errors.New("plain"), 0); got != 10*time.Millisecond {
		t.Errorf("plain error: %v, want the first backoff", got)
	}
	big := newTestDependency(func(o *DependencyOptions) {
		o.ThrottleBackoff = time.Hour
		o.ThrottleBackoffMax = 2 * time.Hour
	})
	for _, retries := range []int{0, 1, 16, 40} {
		if got := big.throttleDelay(unhinted, retries); got <= 0 || got > 2*time.Hour {
			t.Errorf("1h backoff, %d retries: %v, want within (0, 2h]", retries, got)
		}
	}
	// Defaults when unset.
	def := NewDependency(DependencyOptions{Logger: slog.New(slog.DiscardHandler), MaxConcurrency: 1, Breaker: testBreaker(1)})
	if got := def.throttleDelay(unhinted, 0); got != 100*time.Millisecond {
		t.Errorf("default first backoff = %v, want 100ms", got)
	}
	if got := def.throttleDelay(unhinted, 30); got != 5*time.Second {
		t.Errorf("default backoff cap = %v, want 5s", got)
	}

	// With a hint: the hint plus up to 10% jitter plus 5ms, never less than the hint.
	const hint = 200 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 500 {
		got := d.throttleDelay(throttle(hint), 3)
		if got < hint+5*time.Millisecond || got > hint+hint/10+5*time.Millisecond {
			t.Fatalf("hint %v: delay %v outside [hint+5ms, hint*1.1+5ms]", hint, got)
		}
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Errorf("500 hinted delays were all %v: no jitter", seen)
	}
	// A zero hint means now.
	if got := d.throttleDelay(throttle(0), 7); got != 5*time.Millisecond {
		t.Errorf("zero hint: %v, want 5ms", got)
	}
}

func TestDependencyBreakerOpensOnTransientFailures(t *testing.T) {
	for name, failure := range map[string]error{
		"transient":    &Error{Kind: Transient, Reason: "cosmos-503", Status: 503},
		"unclassified": errors.New("connection reset"),
	} {
		t.Run(name, func(t *testing.T) {
			d := newTestDependency(nil)
			for i := range 4 {
				err := d.Do(context.Background(), wait0, func(context.Context) error { return failure })
				if KindOf(err) != Transient {
					t.Fatalf("failure %d: %v, want transient", i, err)
				}
				if e, _ := AsError(err); e.Reason == ReasonCircuitOpen {
					t.Fatalf("failure %d rejected: the circuit opened before MinRequests", i)
				}
			}
			if st := d.State().Breaker.State; st != "open" {
				t.Fatalf("breaker %q after 4 failures, want open", st)
			}
			called := false
			e := mustError(t, d.Do(context.Background(), wait0, func(context.Context) error { called = true; return nil }))
			if called {
				t.Error("the call ran through an open circuit")
			}
			if e.Kind != Rejected || e.Reason != ReasonCircuitOpen || e.RetryAfter <= 0 || e.RetryAfter > time.Hour {
				t.Errorf("error = %+v, want rejected %s with a Retry-After up to the breaker delay", e, ReasonCircuitOpen)
			}
			open, remaining := d.BreakerOpen()
			if !open || remaining <= 0 || remaining > time.Hour {
				t.Errorf("BreakerOpen() = %v, %v", open, remaining)
			}
			s := d.State()
			if s.Counts.ShedCircuit != 1 || s.Counts.Failures != 4 || s.Breaker.RemainingDelayMS <= 0 || s.Breaker.FailureRate != 1 {
				t.Errorf("state = %+v", s)
			}
		})
	}
}

func TestDependencyBreakerIgnoresWhatIsNotAnOutage(t *testing.T) {
	// "cancelled" and "deadline" end the caller's own context: callers giving up, not
	// the dependency failing.
	run := func(t *testing.T, name string, do func(d *Dependency) error) {
		d := newTestDependency(func(o *DependencyOptions) {
			o.ThrottleMaxRetries = 0
			o.Breaker = config.BreakerConfig{FailureRate: 0.01, MinRequests: 1, Window: time.Minute, Delay: time.Hour, SuccessThreshold: 1}
		})
		for range 10 {
			if err := do(d); err == nil {
				t.Fatal("Do = nil, want the failure")
			}
		}
		if open, _ := d.BreakerOpen(); open {
			t.Fatalf("the circuit opened on %s errors", name)
		}
		called := false
		if err := d.Do(context.Background(), wait0, func(context.Context) error { called = true; return nil }); err != nil || !called {
			t.Errorf("after %s errors: Do = %v, called = %v", name, err, called)
		}
	}
	for name, call := range map[string]func(ctx context.Context) error{
		"throttle":  func(context.Context) error { return throttle(0) },
		"permanent": func(context.Context) error { return &Error{Kind: Permanent, Reason: "cosmos-413", Status: 413} },
		"rejected":  func(context.Context) error { return &Error{Kind: Rejected, Reason: "shed"} },
	} {
		t.Run(name, func(t *testing.T) {
			run(t, name, func(d *Dependency) error { return d.Do(context.Background(), wait0, call) })
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		run(t, "cancelled", func(d *Dependency) error {
			ctx, cancel := context.WithCancel(context.Background())
			return d.Do(ctx, wait0, func(context.Context) error {
				cancel()
				return fmt.Errorf("read: %w", context.Canceled)
			})
		})
	})
	t.Run("deadline", func(t *testing.T) {
		run(t, "deadline", func(d *Dependency) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			return d.Do(ctx, wait0, func(ctx context.Context) error {
				<-ctx.Done()
				return fmt.Errorf("read: %w", ctx.Err())
			})
		})
	})
}

// TestDependencyBreakerCountsSlowness: an attempt that times out while its caller still
// waits (a try timeout inside the client) is the dependency being slow, and opens the
// circuit like any other transient failure.
func TestDependencyBreakerCountsSlowness(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) {
		o.Breaker = config.BreakerConfig{FailureRate: 0.5, MinRequests: 4, Window: time.Minute, Delay: time.Hour, SuccessThreshold: 1}
	})
	for range 4 {
		e := mustError(t, d.Do(context.Background(), wait0, func(context.Context) error {
			return fmt.Errorf("try timed out: %w", context.DeadlineExceeded)
		}))
		if e.Kind != Transient || e.Reason != ReasonTimeout {
			t.Fatalf("error = %+v, want transient %s", e, ReasonTimeout)
		}
	}
	if open, _ := d.BreakerOpen(); !open {
		t.Error("the circuit stayed closed after four attempt timeouts")
	}
}

func TestDependencyFinishMapping(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.Breaker = testBreaker(1000) })
	perm := &Error{Kind: Permanent, Reason: "cosmos-400-1001", Status: 400, SubStatus: 1001}
	if err := d.Do(context.Background(), wait0, func(context.Context) error { return perm }); err != perm {
		t.Errorf("permanent: Do = %v, want the classified error itself", err)
	}
	e := mustError(t, d.Do(context.Background(), wait0, func(context.Context) error { return errors.New("boom") }))
	if e.Kind != Transient || e.Reason != "unclassified" || e.Err == nil || e.Err.Error() != "boom" {
		t.Errorf("unclassified: %+v", e)
	}
	cctx, cancel := context.WithCancel(context.Background())
	e = mustError(t, d.Do(cctx, wait0, func(context.Context) error { cancel(); return context.Canceled }))
	if e.Kind != Transient || e.Reason != ReasonDeadline || !errors.Is(e, context.Canceled) {
		t.Errorf("cancelled: %+v", e)
	}
	c := d.State().Counts
	if c.Permanent != 1 || c.Failures != 1 || c.DeadlineMisses != 1 || c.Calls != 3 {
		t.Errorf("counts = %+v", c)
	}
}

func TestDependencyClassify(t *testing.T) {
	sentinel := errors.New("429 from the wire")
	d := newTestDependency(func(o *DependencyOptions) {
		o.Classify = func(err error) error {
			if errors.Is(err, sentinel) {
				return &Error{Kind: Transient, Reason: ReasonThrottled, Hinted: true, Err: err}
			}
			return err
		}
	})
	attempts := 0
	err := d.Do(context.Background(), wait0, func(context.Context) error {
		attempts++
		if attempts < 3 {
			return sentinel
		}
		return nil
	})
	if err != nil || attempts != 3 {
		t.Errorf("Do = %v after %d attempts, want the classified throttles retried", err, attempts)
	}
}

func TestDependencyOperationTimeout(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.OperationTimeout = 50 * time.Millisecond })
	e := mustError(t, d.Do(context.Background(), wait0, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	if e.Kind != Transient || e.Reason != ReasonTimeout || !errors.Is(e, timeout.ErrExceeded) {
		t.Errorf("error = %+v, want transient %s", e, ReasonTimeout)
	}
	if c := d.State().Counts; c.Failures != 1 {
		t.Errorf("Failures = %d, want 1", c.Failures)
	}
}

func TestDependencyCallerDeadline(t *testing.T) {
	d := newTestDependency(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	e := mustError(t, d.Do(ctx, wait0, func(ctx context.Context) error {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 30*time.Millisecond {
			t.Errorf("the call's deadline %v is not bounded by the caller's", dl)
		}
		<-ctx.Done()
		return ctx.Err()
	}))
	if e.Kind != Transient || e.Reason != ReasonDeadline {
		t.Errorf("error = %+v, want transient %s", e, ReasonDeadline)
	}
	if c := d.State().Counts; c.DeadlineMisses != 1 || c.Failures != 0 {
		t.Errorf("counts = %+v", c)
	}
	if open, _ := d.BreakerOpen(); open {
		t.Error("a caller's deadline opened the circuit")
	}
}

// holder occupies permits of a Dependency until released.
type holder struct {
	entered chan struct{}
	release chan struct{}
	done    chan error
}

func hold(d *Dependency, n int) *holder {
	h := &holder{entered: make(chan struct{}, n), release: make(chan struct{}), done: make(chan error, n)}
	for range n {
		go func() {
			h.done <- d.Do(context.Background(), CallOptions{MaxWait: time.Second}, func(context.Context) error {
				h.entered <- struct{}{}
				<-h.release
				return nil
			})
		}()
	}
	for range n {
		<-h.entered
	}
	return h
}

func (h *holder) finish(t *testing.T, n int) {
	t.Helper()
	close(h.release)
	for range n {
		if err := <-h.done; err != nil {
			t.Errorf("held call: %v", err)
		}
	}
}

func TestDependencyBulkhead(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) {
		o.MaxConcurrency = 2
		o.Breaker = config.BreakerConfig{FailureRate: 0.01, MinRequests: 1, Window: time.Minute, Delay: time.Hour, SuccessThreshold: 1}
	})
	h := hold(d, 2)
	if s := d.State().Limiter; s.InFlight != 2 || s.PermitsAvailable != 0 || s.MaxConcurrency != 2 {
		t.Errorf("limiter while full = %+v", s)
	}
	for _, maxWait := range []time.Duration{0, 20 * time.Millisecond} {
		called := false
		e := mustError(t, d.Do(context.Background(), CallOptions{MaxWait: maxWait}, func(context.Context) error { called = true; return nil }))
		if called {
			t.Errorf("MaxWait %v: the call ran past a full bulkhead", maxWait)
		}
		if e.Kind != Rejected || e.Reason != ReasonBulkheadFull || e.RetryAfter != time.Second {
			t.Errorf("MaxWait %v: error = %+v, want rejected %s with Retry-After 1s", maxWait, e, ReasonBulkheadFull)
		}
	}
	if c := d.State().Counts; c.ShedBulkhead != 2 || c.Attempts != 2 {
		t.Errorf("counts = %+v", c)
	}
	// A caller willing to wait gets the permit once one is released.
	waited := make(chan error, 1)
	go func() {
		waited <- d.Do(context.Background(), CallOptions{MaxWait: 10 * time.Second}, func(context.Context) error { return nil })
	}()
	h.finish(t, 2)
	if err := <-waited; err != nil {
		t.Errorf("waiting caller: %v", err)
	}
	if open, _ := d.BreakerOpen(); open {
		t.Error("bulkhead rejections opened the circuit")
	}
	if s := d.State().Limiter; s.InFlight != 0 || s.PermitsAvailable != 2 {
		t.Errorf("limiter after release = %+v", s)
	}
}

func TestDependencyBulkheadCallerGivesUp(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.MaxConcurrency = 1 })
	h := hold(d, 1)
	defer h.finish(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	e := mustError(t, d.Do(ctx, CallOptions{MaxWait: 10 * time.Second}, func(context.Context) error { return nil }))
	if e.Reason != ReasonDeadline || e.Kind != Transient {
		t.Errorf("error = %+v, want transient %s", e, ReasonDeadline)
	}
	if c := d.State().Counts; c.ShedBulkhead != 0 {
		t.Errorf("ShedBulkhead = %d, want 0: the caller left, nothing was shed", c.ShedBulkhead)
	}
}

func TestDependencyPeakInFlight(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.MaxConcurrency = 5 })
	if s := d.State().Limiter; s.PeakInFlight != 0 || s.InFlight != 0 || s.PermitsAvailable != 5 {
		t.Fatalf("limiter before any call = %+v", s)
	}
	h := hold(d, 3)
	if s := d.State().Limiter; s.InFlight != 3 || s.PeakInFlight != 3 || s.PermitsAvailable != 2 {
		t.Errorf("limiter with 3 in flight = %+v", s)
	}
	h.finish(t, 3)
	for range 5 {
		_ = d.Do(context.Background(), wait0, func(context.Context) error { return nil })
	}
	if s := d.State().Limiter; s.InFlight != 0 || s.PeakInFlight != 3 {
		t.Errorf("limiter after = %+v, want 0 in flight and the peak of 3 kept", s)
	}
	h = hold(d, 5)
	if s := d.State().Limiter; s.PeakInFlight != 5 {
		t.Errorf("PeakInFlight = %d, want 5", s.PeakInFlight)
	}
	h.finish(t, 5)
}

func TestDependencyPeakInFlightUnderContention(t *testing.T) {
	const limit = 8
	d := newTestDependency(func(o *DependencyOptions) { o.MaxConcurrency = limit })
	var cur, max atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Do(context.Background(), CallOptions{MaxWait: 10 * time.Second}, func(context.Context) error {
				n := cur.Add(1)
				for m := max.Load(); n > m && !max.CompareAndSwap(m, n); m = max.Load() {
				}
				time.Sleep(time.Millisecond)
				cur.Add(-1)
				return nil
			})
		}()
	}
	wg.Wait()
	s := d.State()
	if max.Load() > limit {
		t.Errorf("%d calls ran at once, above the limit of %d", max.Load(), limit)
	}
	if s.Limiter.PeakInFlight < max.Load() || s.Limiter.PeakInFlight > limit {
		t.Errorf("PeakInFlight = %d, observed %d, limit %d", s.Limiter.PeakInFlight, max.Load(), limit)
	}
	if s.Limiter.InFlight != 0 || s.Counts.Successes != 64 {
		t.Errorf("state = %+v", s)
	}
}

func TestDependencyPacer(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 1, Min: 0.5, Max: 100, Now: clk.Now})
	d := newTestDependency(func(o *DependencyOptions) {
		o.Pacer = p
		o.ThrottleMaxRetries = 0
	})
	paced := CallOptions{MaxWait: 10 * time.Millisecond, Paced: true}
	if err := d.Do(context.Background(), paced, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("first paced call: %v", err)
	}
	if p.Rate() <= 1 {
		t.Errorf("a paced success left the rate at %v", p.Rate())
	}
	// The next slot is ~1s away, beyond MaxWait.
	called := false
	e := mustError(t, d.Do(context.Background(), paced, func(context.Context) error { called = true; return nil }))
	if called || e.Kind != Rejected || e.Reason != ReasonRateLimited || e.RetryAfter <= 10*time.Millisecond {
		t.Errorf("second paced call: called=%v error=%+v, want rejected %s with the slot's wait", called, e, ReasonRateLimited)
	}
	// Unpaced calls are not held back.
	if err := d.Do(context.Background(), CallOptions{MaxWait: 0}, func(context.Context) error { return nil }); err != nil {
		t.Errorf("unpaced call: %v", err)
	}
	// A throttle slows the pacer and pauses it for the hint.
	clk.Advance(time.Hour)
	before := p.Rate()
	_ = d.Do(context.Background(), paced, func(context.Context) error { return throttle(3 * time.Second) })
	if p.Rate() >= before {
		t.Errorf("rate %v after a throttle, was %v", p.Rate(), before)
	}
	if p.Delay() < 3*time.Second {
		t.Errorf("pacer delay %v after a 3s hint", p.Delay())
	}
	s := d.State()
	if s.Counts.ShedRate != 1 || s.Limiter.PacedRate != p.Rate() || s.Limiter.PacerDelayMS < 3000 {
		t.Errorf("state = %+v", s)
	}
	// A full bulkhead's Retry-After follows the pacer when there is one.
	one := newTestDependency(func(o *DependencyOptions) { o.MaxConcurrency = 1; o.Pacer = p })
	h := hold(one, 1)
	e = mustError(t, one.Do(context.Background(), CallOptions{}, func(context.Context) error { return nil }))
	h.finish(t, 1)
	if e.Reason != ReasonBulkheadFull || e.RetryAfter < 3*time.Second {
		t.Errorf("bulkhead with a paused pacer: %+v, want Retry-After >= the pacer's delay", e)
	}
}

func TestDependencyStateJSON(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) { o.Name = "cosmos-writes" })
	h := hold(d, 2)
	b, err := json.Marshal(d.State())
	h.finish(t, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name    string `json:"name"`
		Breaker struct {
			State string `json:"state"`
		} `json:"circuitBreaker"`
		Limiter map[string]any `json:"limiter"`
		Counts  map[string]any `json:"counts"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "cosmos-writes" || got.Breaker.State != "closed" {
		t.Errorf("state = %s", b)
	}
	for _, k := range []string{"maxConcurrency", "inFlight", "peakInFlight", "permitsAvailable", "pacerDelayMs"} {
		if _, ok := got.Limiter[k]; !ok {
			t.Errorf("limiter lacks %q: %s", k, b)
		}
	}
	if got.Limiter["peakInFlight"] != float64(2) || got.Limiter["inFlight"] != float64(2) {
		t.Errorf("limiter = %v, want 2 in flight at the peak", got.Limiter)
	}
	for _, k := range []string{"calls", "attempts", "successes", "throttled", "retries", "failures", "permanent", "shedCircuitOpen", "shedBulkheadFull", "shedRateLimited", "deadlineMisses"} {
		if _, ok := got.Counts[k]; !ok {
			t.Errorf("counts lacks %q: %s", k, b)
		}
	}
}

func TestDependencyBreakerRecovers(t *testing.T) {
	d := newTestDependency(func(o *DependencyOptions) {
		o.Breaker = config.BreakerConfig{FailureRate: 0.5, MinRequests: 2, Window: time.Minute, Delay: 20 * time.Millisecond, SuccessThreshold: 1}
	})
	for range 2 {
		_ = d.Do(context.Background(), wait0, func(context.Context) error { return errors.New("down") })
	}
	if open, _ := d.BreakerOpen(); !open {
		t.Fatal("circuit not open after 2 failures")
	}
	time.Sleep(25 * time.Millisecond) // past the breaker's delay
	called := false
	if err := d.Do(context.Background(), wait0, func(context.Context) error { called = true; return nil }); err != nil || !called {
		t.Fatalf("trial call after the delay: %v, called=%v", err, called)
	}
	if st := d.State().Breaker.State; st != "closed" {
		t.Errorf("breaker %q after a successful trial, want closed", st)
	}
}

// TestDependencyTransientRetries: transient failures have their own budget, separate
// from throttles, and are not retried at all when it is zero.
func TestDependencyTransientRetries(t *testing.T) {
	transient := &Error{Kind: Transient, Reason: "cosmos-503", Status: 503}
	for _, tc := range []struct {
		name             string
		budget, failures int
		wantAttempts     int
		wantErr          bool
	}{
		{"no budget", 0, 1, 1, true},
		{"recovers", 2, 2, 3, false},
		{"exhausted", 2, 5, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDependency(func(o *DependencyOptions) {
				o.TransientMaxRetries = tc.budget
				o.TransientBackoff, o.TransientBackoffMax = time.Millisecond, 2*time.Millisecond
			})
			attempts := 0
			err := d.Do(context.Background(), wait0, func(context.Context) error {
				attempts++
				if attempts <= tc.failures {
					return transient
				}
				return nil
			})
			if attempts != tc.wantAttempts || (err != nil) != tc.wantErr {
				t.Errorf("attempts = %d, err = %v; want %d attempts, error %v", attempts, err, tc.wantAttempts, tc.wantErr)
			}
		})
	}
	// Throttles do not spend the transient budget, nor transients the throttle budget.
	d := newTestDependency(func(o *DependencyOptions) {
		o.TransientMaxRetries, o.ThrottleMaxRetries = 1, 2
		o.TransientBackoff, o.TransientBackoffMax = time.Millisecond, 2*time.Millisecond
	})
	script := []error{throttle(0), transient, throttle(0), nil}
	attempts := 0
	if err := d.Do(context.Background(), wait0, func(context.Context) error {
		attempts++
		return script[attempts-1]
	}); err != nil || attempts != 4 {
		t.Errorf("mixed failures: attempts = %d, err = %v; want 4 attempts and success", attempts, err)
	}
}
