package resilience

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/sluice-dev/sluice/internal/config"
)

// DependencyOptions configures a Dependency.
type DependencyOptions struct {
	// Name identifies the dependency in logs and in the health report.
	Name   string
	Logger *slog.Logger
	// OperationTimeout bounds one logical operation, retries included. The caller's
	// context deadline bounds it further.
	OperationTimeout time.Duration
	// ThrottleMaxRetries and ThrottleMaxWait bound the retries of throttled attempts:
	// the count, and the total time spent waiting for the server's hints.
	ThrottleMaxRetries int
	ThrottleMaxWait    time.Duration
	// ThrottleBackoff is the first wait after a throttle that carried no usable hint; it
	// doubles per retry up to ThrottleBackoffMax.
	ThrottleBackoff    time.Duration
	ThrottleBackoffMax time.Duration
	// TransientMaxRetries is how many times an attempt that failed transiently (a
	// transport error, an attempt timeout, 408, 5xx) is retried here, after a backoff
	// from TransientBackoff doubling up to TransientBackoffMax, with jitter. Set it only
	// for calls that are safe to repeat and that no lower layer retries already, or the
	// attempts multiply; zero leaves such failures to the caller.
	TransientMaxRetries int
	TransientBackoff    time.Duration
	TransientBackoffMax time.Duration
	// MaxConcurrency caps the calls in flight from this instance (a bulkhead).
	MaxConcurrency int
	Breaker        config.BreakerConfig
	// Pacer, when set, spaces the calls made with CallOptions.Paced.
	Pacer *Pacer
	// Classify turns an error from the call into an *Error. Unclassified errors count as
	// transient failures.
	Classify func(error) error
}

// CallOptions says how long one call may queue for a permit and a pacer slot before it is
// rejected. An HTTP request passes a few milliseconds (shed, don't hold the caller); a
// queue invocation can afford to wait, since waiting is what load levelling is.
type CallOptions struct {
	MaxWait time.Duration
	Paced   bool
}

// Dependency is the set of policies around one downstream service, shared by every
// invocation of the instance so that its breaker, bulkhead and pacer see all traffic.
type Dependency struct {
	opts     DependencyOptions
	breaker  circuitbreaker.CircuitBreaker[any]
	bulkhead bulkhead.Bulkhead[any]
	timeout  timeout.Timeout[any]
	inFlight atomic.Int64
	peak     atomic.Int64 // the most calls ever in flight at once
	counts   counters
}

type counters struct {
	calls, attempts, successes, throttled, retries, failures, permanent atomic.Int64
	shedCircuit, shedBulkhead, shedRate, deadlines                      atomic.Int64
}

// NewDependency builds the policies.
func NewDependency(opts DependencyOptions) *Dependency {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ThrottleBackoff <= 0 {
		opts.ThrottleBackoff = 100 * time.Millisecond
	}
	if opts.ThrottleBackoffMax <= 0 {
		opts.ThrottleBackoffMax = 5 * time.Second
	}
	if opts.TransientBackoff <= 0 {
		opts.TransientBackoff = 200 * time.Millisecond
	}
	if opts.TransientBackoffMax <= 0 {
		opts.TransientBackoffMax = 2 * time.Second
	}
	if opts.Classify == nil {
		opts.Classify = func(err error) error { return err }
	}
	d := &Dependency{opts: opts}
	logger := opts.Logger.With("dependency", opts.Name)
	b := opts.Breaker
	d.breaker = circuitbreaker.NewBuilder[any]().
		// Only the dependency's own failures open the circuit. A caller that gave up
		// (context cancelled or past its deadline), a throttle, or a bad request says
		// nothing about the dependency's health; counting them lets impatient callers
		// or one bad message trip the breaker for everybody.
		HandleIf(func(_ any, err error) bool { return countsAgainstBreaker(err) }).
		WithFailureRateThreshold(b.FailureRate, uint(b.MinRequests), b.Window).
		WithDelay(b.Delay).
		WithSuccessThreshold(uint(b.SuccessThreshold)).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			logger.Warn("circuit breaker changed state", "from", e.OldState.String(), "to", e.NewState.String())
		}).
		Build()
	d.bulkhead = bulkhead.New[any](uint(opts.MaxConcurrency))
	d.timeout = timeout.New[any](opts.OperationTimeout)
	return d
}

func countsAgainstBreaker(err error) bool {
	if err == nil {
		return false
	}
	// attempt has classified every error of a call, telling an attempt that ran out of
	// time while its caller still waited (the dependency's slowness) from a caller that
	// gave up (ReasonDeadline). A bare context error comes from waiting for a permit or
	// a pacer slot, which says nothing about the dependency either.
	if e, ok := AsError(err); ok {
		return e.Kind == Transient && e.Reason != ReasonThrottled && e.Reason != ReasonDeadline
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Reasons shared by every dependency.
const (
	ReasonThrottled     = "throttled"
	ReasonCircuitOpen   = "circuit-open"
	ReasonBulkheadFull  = "bulkhead-full"
	ReasonRateLimited   = "rate-limited"
	ReasonTimeout       = "timeout"
	ReasonDeadline      = "invocation-deadline"
	ReasonHintTooLong   = "retry-after-beyond-deadline"
	ReasonRetriesNoMore = "throttle-retries-exhausted"
)

// Do runs call under the policies. call must use the context it is given, which ends at
// the operation timeout or the caller's deadline. The returned error is nil or an *Error.
func (d *Dependency) Do(ctx context.Context, co CallOptions, call func(ctx context.Context) error) error {
	d.counts.calls.Add(1)
	start := time.Now()
	deadline, hasDeadline := ctx.Deadline()
	if !hasDeadline || time.Until(deadline) > d.opts.OperationTimeout {
		deadline = start.Add(d.opts.OperationTimeout)
	}
	logger := d.opts.Logger

	// fits reports whether waiting delay before another attempt still leaves time to make
	// it: the server's hint is honoured in full or not at all, never cut short.
	fits := func(delay time.Duration) bool {
		if time.Since(start)+delay > d.opts.ThrottleMaxWait {
			return false
		}
		return time.Until(deadline)-delay > 50*time.Millisecond
	}
	// Throttles and transient failures have separate budgets; the policy is built per
	// call, so these counters are this call's.
	var throttleRetries, transientRetries int
	retryable := func(err error) bool {
		if isThrottle(err) {
			return throttleRetries < d.opts.ThrottleMaxRetries
		}
		return isRetryableTransient(err) && transientRetries < d.opts.TransientMaxRetries
	}
	retry := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return retryable(err) }).
		// The delay funcs draw their own jitter, so the checks use the largest delay
		// they can draw: a hint that fits only with luck is not started.
		AbortIf(func(_ any, err error) bool {
			switch {
			case isThrottle(err):
				return !fits(d.throttleDelayBound(err))
			case isRetryableTransient(err):
				return time.Until(deadline)-d.transientDelay(transientRetries) <= 50*time.Millisecond
			}
			return false
		}).
		WithMaxRetries(d.opts.ThrottleMaxRetries + d.opts.TransientMaxRetries).
		WithDelayFunc(func(exec failsafe.ExecutionAttempt[any]) time.Duration {
			if isThrottle(exec.LastError()) {
				return d.throttleDelay(exec.LastError(), throttleRetries)
			}
			return d.transientJitter(transientRetries)
		}).
		ReturnLastFailure().
		OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[any]) {
			d.counts.retries.Add(1)
			kind := "throttled"
			if isThrottle(e.LastError()) {
				throttleRetries++
			} else {
				transientRetries++
				kind = "transient"
			}
			logger.Debug("retrying call", "dependency", d.opts.Name, "failure", kind, "attempt", e.Attempts(), "delay_ms", e.Delay.Milliseconds())
		}).
		Build()

	_, err := failsafe.With[any](d.timeout, retry, d.breaker).
		WithContext(ctx).
		GetWithExecution(func(exec failsafe.Execution[any]) (any, error) {
			return nil, d.attempt(ctx, exec.Context(), co, deadline, call)
		})
	return d.finish(ctx, err, deadline)
}

// throttleDelay is the wait before retrying a throttled attempt: the server's hint plus
// up to 10 % upward jitter, so instances that were throttled together do not return
// together, or a doubling backoff when the server gave no hint.
func (d *Dependency) throttleDelay(err error, retries int) time.Duration {
	if e, ok := AsError(err); ok && e.Hinted {
		// An explicit zero hint means "now": retry at once, jitter aside.
		return e.RetryAfter + time.Duration(rand.Int64N(int64(e.RetryAfter/10)+1)) + 5*time.Millisecond
	}
	delay := d.opts.ThrottleBackoff << min(retries, 16)
	if delay > d.opts.ThrottleBackoffMax || delay <= 0 {
		delay = d.opts.ThrottleBackoffMax
	}
	return delay
}

// throttleDelayBound is the longest delay throttleDelay can return for err.
func (d *Dependency) throttleDelayBound(err error) time.Duration {
	if e, ok := AsError(err); ok && e.Hinted {
		return e.RetryAfter + e.RetryAfter/10 + 5*time.Millisecond
	}
	return d.opts.ThrottleBackoffMax
}

// transientDelay is the backoff before transient retry n+1: TransientBackoff doubling,
// capped at TransientBackoffMax. transientJitter draws the actual wait from its upper
// half, so instances that failed together do not come back together.
func (d *Dependency) transientDelay(n int) time.Duration {
	delay := d.opts.TransientBackoff << min(n, 16)
	if delay > d.opts.TransientBackoffMax || delay <= 0 {
		delay = d.opts.TransientBackoffMax
	}
	return delay
}

func (d *Dependency) transientJitter(n int) time.Duration {
	delay := d.transientDelay(n)
	return delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
}

// isRetryableTransient reports a failure of the dependency that a repeat may cure. An
// attempt cut short because the caller gave up is not one.
func isRetryableTransient(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == Transient && e.Reason != ReasonThrottled && e.Reason != ReasonDeadline
}

func isThrottle(err error) bool {
	e, ok := AsError(err)
	return ok && e.Reason == ReasonThrottled
}

func (d *Dependency) attempt(callerCtx, ctx context.Context, co CallOptions, deadline time.Time, call func(ctx context.Context) error) error {
	maxWait := min(co.MaxWait, time.Until(deadline))
	if co.Paced && d.opts.Pacer != nil {
		if wait, ok := d.opts.Pacer.Wait(ctx, maxWait); !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.counts.shedRate.Add(1)
			return &Error{Kind: Rejected, Reason: ReasonRateLimited, RetryAfter: wait}
		}
	}
	if err := d.bulkhead.AcquirePermitWithMaxWait(ctx, max(0, min(co.MaxWait, time.Until(deadline)))); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.counts.shedBulkhead.Add(1)
		retryAfter := time.Second
		if d.opts.Pacer != nil {
			retryAfter = max(d.opts.Pacer.Delay(), 100*time.Millisecond)
		}
		return &Error{Kind: Rejected, Reason: ReasonBulkheadFull, RetryAfter: retryAfter}
	}
	for n, p := d.inFlight.Add(1), d.peak.Load(); n > p && !d.peak.CompareAndSwap(p, n); p = d.peak.Load() {
	}
	defer func() {
		d.inFlight.Add(-1)
		d.bulkhead.ReleasePermit()
	}()

	d.counts.attempts.Add(1)
	err := d.opts.Classify(call(ctx))
	if err != nil {
		e, classified := AsError(err)
		switch {
		case callerCtx.Err() != nil && (!classified || e.Kind == Transient):
			// The caller gave up: nothing to learn about the dependency.
			err = &Error{Kind: Transient, Reason: ReasonDeadline, Err: err}
		case !classified && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
			// The attempt ran out of its own time (a try timeout or the operation
			// timeout) while the caller still waited: the dependency was too slow.
			err = &Error{Kind: Transient, Reason: ReasonTimeout, Err: err}
		}
	}
	switch {
	case err == nil:
		d.counts.successes.Add(1)
		if co.Paced && d.opts.Pacer != nil {
			d.opts.Pacer.Succeeded()
		}
	case isThrottle(err):
		d.counts.throttled.Add(1)
		if d.opts.Pacer != nil {
			e, _ := AsError(err)
			d.opts.Pacer.Throttled(e.RetryAfter)
		}
	}
	return err
}

// finish maps what the policies returned to an *Error.
func (d *Dependency) finish(ctx context.Context, err error, deadline time.Time) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, circuitbreaker.ErrOpen) {
		d.counts.shedCircuit.Add(1)
		return &Error{Kind: Rejected, Reason: ReasonCircuitOpen, RetryAfter: max(d.breaker.RemainingDelay(), 100*time.Millisecond), Err: err}
	}
	if errors.Is(err, timeout.ErrExceeded) {
		d.counts.failures.Add(1)
		return &Error{Kind: Transient, Reason: ReasonTimeout, Err: err}
	}
	if e, ok := AsError(err); ok {
		switch {
		case e.Kind == Permanent:
			d.counts.permanent.Add(1)
		case e.Reason == ReasonDeadline:
			d.counts.deadlines.Add(1)
		case e.Reason == ReasonThrottled:
			// The retry policy gave up: out of retries, or the hint reaches past what the
			// invocation has left. Say which, keeping the hint for the caller's requeue.
			reason := ReasonRetriesNoMore
			if e.RetryAfter > 0 && (time.Until(deadline) <= e.RetryAfter || e.RetryAfter > d.opts.ThrottleMaxWait) {
				reason = ReasonHintTooLong
			}
			return &Error{Kind: Transient, Reason: reason, RetryAfter: e.RetryAfter, Hinted: e.Hinted, Status: e.Status, SubStatus: e.SubStatus, Err: e}
		case e.Kind == Transient:
			d.counts.failures.Add(1)
		}
		return e
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		d.counts.deadlines.Add(1)
		return &Error{Kind: Transient, Reason: ReasonDeadline, Err: err}
	}
	d.counts.failures.Add(1)
	return &Error{Kind: Transient, Reason: "unclassified", Err: err}
}

// BreakerOpen reports whether the circuit is open and how long until it half-opens, so a
// caller can shed before doing any work.
func (d *Dependency) BreakerOpen() (bool, time.Duration) {
	if d.breaker.IsOpen() {
		return true, d.breaker.RemainingDelay()
	}
	return false, 0
}

// State is a dependency's policies as the health endpoint reports them.
type State struct {
	Name    string       `json:"name"`
	Breaker BreakerState `json:"circuitBreaker"`
	Limiter LimiterState `json:"limiter"`
	Counts  CountState   `json:"counts"`
}

type BreakerState struct {
	State            string  `json:"state"`
	RemainingDelayMS int64   `json:"remainingDelayMs"`
	FailureRate      float64 `json:"failureRate"`
	Executions       uint    `json:"executions"`
}

type LimiterState struct {
	MaxConcurrency   int     `json:"maxConcurrency"`
	InFlight         int64   `json:"inFlight"`
	PeakInFlight     int64   `json:"peakInFlight"`
	PermitsAvailable int64   `json:"permitsAvailable"`
	PacedRate        float64 `json:"pacedWritesPerSecond,omitempty"`
	PacerDelayMS     int64   `json:"pacerDelayMs"`
}

type CountState struct {
	Calls          int64 `json:"calls"`
	Attempts       int64 `json:"attempts"`
	Successes      int64 `json:"successes"`
	Throttled      int64 `json:"throttled"`
	Retries        int64 `json:"retries"`
	Failures       int64 `json:"failures"`
	Permanent      int64 `json:"permanent"`
	ShedCircuit    int64 `json:"shedCircuitOpen"`
	ShedBulkhead   int64 `json:"shedBulkheadFull"`
	ShedRate       int64 `json:"shedRateLimited"`
	DeadlineMisses int64 `json:"deadlineMisses"`
}

// State returns a snapshot of the policies.
func (d *Dependency) State() State {
	m := d.breaker.Metrics()
	s := State{
		Name: d.opts.Name,
		Breaker: BreakerState{
			State:            d.breaker.State().String(),
			RemainingDelayMS: d.breaker.RemainingDelay().Milliseconds(),
			FailureRate:      m.FailureRate(),
			Executions:       m.Executions(),
		},
		Limiter: LimiterState{MaxConcurrency: d.opts.MaxConcurrency, InFlight: d.inFlight.Load(), PeakInFlight: d.peak.Load()},
		Counts: CountState{
			Calls: d.counts.calls.Load(), Attempts: d.counts.attempts.Load(), Successes: d.counts.successes.Load(),
			Throttled: d.counts.throttled.Load(), Retries: d.counts.retries.Load(), Failures: d.counts.failures.Load(),
			Permanent: d.counts.permanent.Load(), ShedCircuit: d.counts.shedCircuit.Load(),
			ShedBulkhead: d.counts.shedBulkhead.Load(), ShedRate: d.counts.shedRate.Load(),
			DeadlineMisses: d.counts.deadlines.Load(),
		},
	}
	s.Limiter.PermitsAvailable = int64(d.opts.MaxConcurrency) - s.Limiter.InFlight
	if d.opts.Pacer != nil {
		s.Limiter.PacedRate = d.opts.Pacer.Rate()
		s.Limiter.PacerDelayMS = d.opts.Pacer.Delay().Milliseconds()
	}
	return s
}
