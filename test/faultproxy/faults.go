package faultproxy

import (
	"fmt"
	"net/http"
	"time"
)

// Reset says how a rule breaks the connection instead of answering.
type Reset uint8

const (
	// NoReset answers normally.
	NoReset Reset = iota
	// ResetBeforeForward resets the connection (TCP RST) without
	// forwarding: the store never sees the request, the client sees
	// "connection reset by peer".
	ResetBeforeForward
	// ResetMidResponse forwards the request, so the store applies it, then
	// sends the status line, headers and half the body and closes the
	// connection. The client sees a failure for a request that succeeded,
	// which is what tests of idempotent retries need.
	ResetMidResponse
)

// Rule is one scripted fault. Rules are kept in the order they were
// scripted, and the first live rule that matches a request decides it: a
// rule waiting for its Every-th request lets the others through untouched,
// and later rules wait until it is spent or expired.
type Rule struct {
	// Match selects requests by kind; zero means Any.
	Match Kind
	// If, when set, narrows Match further. It runs under the proxy's lock
	// on every candidate request, so it must be quick and must not call
	// the proxy. The body of a write is readable and is restored after.
	If func(*http.Request) bool

	// Times is how many requests the rule faults before it is spent. Zero
	// means once, or without limit when For is set.
	Times int
	// Every faults one matching request in Every (the Every-th, the
	// 2×Every-th, …). Zero or one faults each of them.
	Every int
	// For is how long the rule lives, from the call to Script. Zero means
	// until Times is spent.
	For time.Duration

	// Status is the code to answer with; zero forwards the request (after
	// Latency) unless Reset is set.
	Status int
	// Headers are set on the answer, e.g. x-ms-retry-after-ms or
	// x-ms-substatus. x-ms-request-charge and x-ms-activity-id are added
	// unless given.
	Headers map[string]string
	// Body replaces the default Cosmos-shaped JSON body.
	Body string

	// Latency holds the request back before the rest of the rule applies.
	Latency time.Duration
	// Reset breaks the connection instead of answering with Status.
	Reset Reset
}

// scripted is a Rule with its progress.
type scripted struct {
	Rule
	expires time.Time // zero: never
	seen    int       // matching requests
	fired   int       // faults injected
}

func (r *scripted) live(now time.Time) bool {
	if !r.expires.IsZero() && !now.Before(r.expires) {
		return false
	}
	return r.Times == 0 || r.fired < r.Times
}

func (r Rule) validate() error {
	switch {
	case r.Status == 0 && r.Latency <= 0 && r.Reset == NoReset:
		return fmt.Errorf("faultproxy: rule does nothing: set Status, Latency or Reset")
	case r.Status != 0 && (r.Status < 100 || r.Status > 599):
		return fmt.Errorf("faultproxy: status %d out of range", r.Status)
	case r.Status != 0 && r.Reset != NoReset:
		return fmt.Errorf("faultproxy: a rule either answers with a status or resets")
	case r.Times < 0 || r.Every < 0 || r.For < 0 || r.Latency < 0:
		return fmt.Errorf("faultproxy: negative Times, Every, For or Latency")
	case r.Reset > ResetMidResponse:
		return fmt.Errorf("faultproxy: unknown reset mode %d", r.Reset)
	}
	return nil
}

// Script appends rules to the fault script. It panics on a rule that
// could never do anything, as that is a mistake in the test.
func (p *Proxy) Script(rules ...Rule) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rules {
		if err := r.validate(); err != nil {
			panic(err)
		}
		if r.Match == 0 {
			r.Match = Any
		}
		if r.Times == 0 && r.For == 0 {
			r.Times = 1
		}
		if r.Every == 0 {
			r.Every = 1
		}
		s := &scripted{Rule: r}
		if r.For > 0 {
			s.expires = now.Add(r.For)
		}
		p.rules = append(p.rules, s)
	}
	p.log.Debug("fault script extended", "added", len(rules), "rules", len(p.rules))
}

// nextFault returns the rule to apply to a request, or nil to let it
// through. Spent and expired rules are dropped here.
func (p *Proxy) nextFault(r *http.Request, k Kind, now time.Time) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.rules[:0]
	var fire *Rule
	decided := false
	for _, s := range p.rules {
		if !s.live(now) {
			continue
		}
		kept = append(kept, s)
		if decided || s.Match&k == 0 || (s.If != nil && !s.matches(r)) {
			continue
		}
		decided = true
		s.seen++
		if s.seen%s.Every == 0 {
			s.fired++
			rule := s.Rule
			fire = &rule
		}
	}
	clear(p.rules[len(kept):])
	p.rules = kept
	return fire
}

// matches runs the rule's If hook on a fresh copy of the body, and leaves a fresh one
// behind for the next hook and for forwarding.
func (s *scripted) matches(r *http.Request) bool {
	if r.GetBody != nil {
		r.Body, _ = r.GetBody()
		defer func() { r.Body, _ = r.GetBody() }()
	}
	return s.If(r)
}

// SetLatency adds d to every request for the next window; a zero window
// means until ClearFaults. It replaces any earlier setting.
func (p *Proxy) SetLatency(d, window time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	p.latencyUntil = time.Time{}
	if window > 0 {
		p.latencyUntil = time.Now().Add(window)
	}
}

func (p *Proxy) latencyAt(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.latency <= 0 || (!p.latencyUntil.IsZero() && !now.Before(p.latencyUntil)) {
		return 0
	}
	return p.latency
}

// OutageMode says how requests fail during an outage.
type OutageMode uint8

const (
	// OutageReset accepts connections and resets them on each request.
	OutageReset OutageMode = iota
	// OutageUnavailable answers 503 ServiceUnavailable.
	OutageUnavailable
	// OutageRefused closes the listener, so new connections are refused
	// by the kernel and are not counted; requests on connections already
	// open are reset and counted. The listener reopens on the same port
	// when the outage ends.
	OutageRefused
)

// Outage makes every request fail for d, the way mode says. It replaces
// an outage already in progress.
func (p *Proxy) Outage(d time.Duration, mode OutageMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endOutageLocked()
	p.outageMode = mode
	p.outageUntil = time.Now().Add(d)
	p.log.Info("outage started", "duration", d, "mode", mode)
	gen := p.outageGen
	if mode == OutageRefused {
		p.refuseLocked()
	}
	p.outageTimer = time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.outageGen == gen {
			p.endOutageLocked()
		}
	})
}

func (p *Proxy) outageAt(now time.Time) (OutageMode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outageMode, now.Before(p.outageUntil)
}

// endOutageLocked ends the current outage, if any, reopening the
// listener if it was closed. p.mu must be held.
func (p *Proxy) endOutageLocked() {
	p.outageGen++
	if p.outageTimer != nil {
		p.outageTimer.Stop()
		p.outageTimer = nil
	}
	if !p.outageUntil.IsZero() {
		p.log.Info("outage ended")
	}
	p.outageUntil = time.Time{}
	if p.refusing {
		p.reopenLocked()
	}
}

// ClearFaults removes every scripted rule, the added latency and any
// outage. Counters are kept; see Reset.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.rules)
	p.rules = p.rules[:0]
	p.latency, p.latencyUntil = 0, time.Time{}
	p.endOutageLocked()
}

func (m OutageMode) String() string {
	switch m {
	case OutageReset:
		return "reset"
	case OutageUnavailable:
		return "unavailable"
	case OutageRefused:
		return "refused"
	}
	return fmt.Sprintf("OutageMode(%d)", uint8(m))
}
