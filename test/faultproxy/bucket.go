package faultproxy

import (
	"math"
	"sync"
	"time"
)

// bucket is a token bucket shared by every client of the proxy, the way a
// container's provisioned throughput is shared by every instance writing
// to it. A zero rate means no limit.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64 // capacity
	tokens float64
	last   time.Time
}

// defaultBurst is a tenth of a second's worth of tokens, at least one.
// That is stricter than Cosmos, which accounts per second: a client that
// keeps its 429s rare here keeps them rare against the service, while a
// client that fires its whole per-second budget at once is caught.
func defaultBurst(rate float64) float64 {
	return math.Max(1, rate/10)
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	b := &bucket{last: now}
	b.set(rate, burst, now)
	b.tokens = b.burst
	return b
}

// set changes the rate and capacity without refilling: tokens already
// spent stay spent, so changing the rate mid-test causes no extra burst.
func (b *bucket) set(rate, burst float64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if rate < 0 {
		rate = 0
	}
	if burst <= 0 {
		burst = defaultBurst(rate)
	}
	b.rate, b.burst = rate, burst
	b.tokens = math.Min(b.tokens, burst)
}

// fill makes the bucket full, as if it had been idle.
func (b *bucket) fill(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens, b.last = b.burst, now
}

// take spends one token. When none is left it reports how long until one
// will be: that is the hint a throttled client gets. A refused request
// spends nothing, as a throttled request costs no request units.
func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate == 0 {
		return true, 0
	}
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}
