package resilience

import (
	"context"
	"sync"
	"time"
)

// Pacer spaces an instance's writes to a rate it learns from the store. It starts at
// Initial and grows fast (StartGrowth per second) until the store first throttles, then
// slowly (Growth per second); every 429 cuts the rate by Decrease, at most once per
// Cooldown, and pauses every writer for as long as the server's hint asks.
//
// Growth is relative to the instance's own rate, not a fixed number of writes per second,
// so the app's total rate grows by the same share whether it runs on 2 instances or 50:
// a fixed step would make 50 instances overshoot the store 25 times harder than 2.
// Together the instances settle just under the store's capacity without knowing how many
// of them there are.
//
// Slow growth is for probing near the capacity the store last showed. When the store has
// not throttled for Quiet and the rate is under 60 % of the highest it has reached (below
// what one cut leaves), a storm has passed and left the rate near Min: the Pacer grows
// fast again up to that mark. Near capacity one cut leaves 70 % of the peak, so this does
// not fire there, however rarely each of many instances sees a 429.
//
// A Pacer is safe for concurrent use. The zero value is not usable; call NewPacer.
type Pacer struct {
	min, max            float64
	growth, startGrowth float64
	decrease            float64
	// cooldown stops one burst of 429s, all answering writes sent at the same rate,
	// from cutting the rate more than once.
	cooldown time.Duration
	now      func() time.Time

	mu           sync.Mutex
	rate         float64
	throttled    bool // the store has throttled this instance at least once
	lastThrottle time.Time
	quiet        time.Duration
	peak         float64   // the highest rate reached
	next         time.Time // earliest start of the next write
	lastDecrease time.Time
}

// burstWindow is how much idle time a Pacer keeps as credit.
const burstWindow = time.Second

// PacerOptions configures a Pacer. Rates are writes per second; growths are fractions
// of the current rate per second of unthrottled writing.
type PacerOptions struct {
	Initial, Min, Max float64
	// StartGrowth applies until the first throttle; 1 (the rate about doubles every
	// 0.7 s) when zero.
	StartGrowth float64
	// Growth applies after the first throttle; 0.05 when zero.
	Growth float64
	// Decrease multiplies the rate on a throttle; 0.7 when zero.
	Decrease float64
	// Cooldown is the least time between two decreases; 200 ms when zero.
	Cooldown time.Duration
	// Quiet is how long without a 429 before growth is fast again; 10 s when zero.
	Quiet time.Duration
	Now   func() time.Time
}

// NewPacer returns a Pacer starting at opts.Initial writes per second.
func NewPacer(opts PacerOptions) *Pacer {
	if opts.Decrease <= 0 || opts.Decrease >= 1 {
		opts.Decrease = 0.7
	}
	if opts.StartGrowth <= 0 {
		opts.StartGrowth = 1
	}
	if opts.Growth <= 0 {
		opts.Growth = 0.05
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = 200 * time.Millisecond
	}
	if opts.Quiet <= 0 {
		opts.Quiet = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pacer{
		min: opts.Min, max: opts.Max, growth: opts.Growth, startGrowth: opts.StartGrowth,
		decrease: opts.Decrease, cooldown: opts.Cooldown, quiet: opts.Quiet, now: opts.Now, rate: opts.Initial, peak: opts.Initial,
		// Credit builds up from idle time only, not from before the Pacer existed.
		next: opts.Now(),
	}
}

// Reserve claims the next write slot if it starts within maxWait, and returns how long
// the caller must wait for it. When the slot is further away, nothing is claimed, ok is
// false, and wait says how far away it is, so the caller can shed or defer with an honest
// Retry-After.
func (p *Pacer) Reserve(maxWait time.Duration) (wait time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	slot := p.next
	// Slots left unused while the instance was idle are credit, up to a second's worth:
	// a burst after a quiet spell goes through at once instead of being spaced out (or,
	// on the HTTP path, shed) against a store that has had nothing to do.
	if floor := now.Add(-burstWindow); slot.Before(floor) {
		slot = floor
	}
	wait = max(slot.Sub(now), 0)
	if wait > maxWait {
		return wait, false
	}
	p.next = slot.Add(time.Duration(float64(time.Second) / p.rate))
	return wait, true
}

// Wait reserves a slot within maxWait and sleeps until it starts. It returns false,
// with the wait it would have needed, when the slot is too far away or ctx ends first.
func (p *Pacer) Wait(ctx context.Context, maxWait time.Duration) (time.Duration, bool) {
	wait, ok := p.Reserve(maxWait)
	if !ok {
		return wait, false
	}
	if wait <= 0 {
		return 0, true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return wait, true
	case <-ctx.Done():
		return wait, false
	}
}

// Succeeded records a write the store accepted.
func (p *Pacer) Succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Adding g per write grows the rate by g×rate for every second spent writing at it.
	g := p.growth
	if !p.throttled || (p.rate < 0.6*p.peak && p.now().Sub(p.lastThrottle) >= p.quiet) {
		g = p.startGrowth
	}
	p.rate = min(p.rate+g, p.max)
	p.peak = max(p.peak, p.rate)
}

// Throttled records a 429 and the server's hint: all writers pause for the hint, and the
// rate drops unless it dropped within the cooldown.
func (p *Pacer) Throttled(hint time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.throttled, p.lastThrottle = true, now
	if resume := now.Add(hint); resume.After(p.next) {
		p.next = resume
	}
	if now.Sub(p.lastDecrease) < p.cooldown {
		return
	}
	p.lastDecrease = now
	p.rate *= p.decrease
	if p.rate < p.min {
		p.rate = p.min
	}
}

// Rate is the current pace in writes per second.
func (p *Pacer) Rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// Delay is how long a write reserved now would wait.
func (p *Pacer) Delay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.next.Sub(p.now()); d > 0 {
		return d
	}
	return 0
}
