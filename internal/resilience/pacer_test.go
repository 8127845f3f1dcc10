package resilience

import (
	"context"
	"math"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for a Pacer.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestPacerReserveSpacesSlots(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 10, Min: 1, Max: 100, Now: clk.Now})
	if p.Rate() != 10 {
		t.Fatalf("Rate() = %v, want the initial 10", p.Rate())
	}
	if w, ok := p.Reserve(0); !ok || w != 0 {
		t.Fatalf("first Reserve(0) = %v, %v; want 0, true", w, ok)
	}
	// The next slot is 1/rate away: too far for a caller that will not wait.
	w, ok := p.Reserve(0)
	if ok || w != 100*time.Millisecond {
		t.Fatalf("second Reserve(0) = %v, %v; want 100ms, false", w, ok)
	}
	// Nothing was claimed, so the same slot is still free.
	if w, ok := p.Reserve(100 * time.Millisecond); !ok || w != 100*time.Millisecond {
		t.Fatalf("Reserve(100ms) = %v, %v; want 100ms, true", w, ok)
	}
	if w, ok := p.Reserve(time.Second); !ok || w != 200*time.Millisecond {
		t.Fatalf("third Reserve = %v, %v; want 200ms, true", w, ok)
	}
	if d := p.Delay(); d != 300*time.Millisecond {
		t.Errorf("Delay() = %v, want 300ms", d)
	}
	// Time passing frees the slots; an idle pacer banks one second's worth of them
	// (10 at 10/s) on top of the current slot, however long it idled, and spaces
	// writes again after that.
	clk.Advance(10 * time.Second)
	if d := p.Delay(); d != 0 {
		t.Errorf("Delay() after idling = %v, want 0", d)
	}
	for i := range 11 {
		if w, ok := p.Reserve(0); !ok || w != 0 {
			t.Fatalf("Reserve %d after idling = %v, %v; want 0, true (burst credit)", i+1, w, ok)
		}
	}
	if w, ok := p.Reserve(0); ok || w != 100*time.Millisecond {
		t.Errorf("Reserve past the credit = %v, %v; want 100ms, false", w, ok)
	}
}

func TestPacerReserveConcurrent(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 1000, Min: 1, Max: 1000, Now: clk.Now})
	const n = 200
	waits := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, ok := p.Reserve(time.Hour)
			if !ok {
				t.Error("Reserve(1h) refused")
			}
			waits[i] = w
		}()
	}
	wg.Wait()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	for i, w := range waits {
		if want := time.Duration(i) * time.Millisecond; w != want {
			t.Fatalf("slot %d starts after %v, want %v: every writer gets its own slot", i, w, want)
		}
	}
}

func TestPacerGrowth(t *testing.T) {
	p := NewPacer(PacerOptions{Initial: 10, Min: 1, Max: 1000, StartGrowth: 0.5, Growth: 0.1, Now: newFakeClock().Now})
	p.Succeeded()
	if got := p.Rate(); !approx(got, 10.5) {
		t.Fatalf("Rate after one success = %v, want 10.5 (start growth per write)", got)
	}
	// After the first throttle growth is slower: Growth per write.
	p.Throttled(0)
	cut := p.Rate()
	if !approx(cut, 10.5*0.7) {
		t.Fatalf("Rate after a throttle = %v, want %v", cut, 10.5*0.7)
	}
	p.Succeeded()
	if got := p.Rate(); !approx(got, cut+0.1) {
		t.Errorf("Rate after a success past the first throttle = %v, want %v", got, cut+0.1)
	}
	// About one second of writes at ~rate r grows it by about Growth×r: relative, so
	// the app's total grows by the same share whatever its instance count.
	for _, initial := range []float64{10, 100} {
		q := NewPacer(PacerOptions{Initial: initial, Min: 1, Max: 10000, Growth: 0.1, Now: newFakeClock().Now})
		q.Throttled(0)
		r0 := q.Rate()
		for range int(r0) {
			q.Succeeded()
		}
		if got := q.Rate() / r0; got < 1.09 || got > 1.11 {
			t.Errorf("initial %v: a second of writes grew the rate by ×%.3f, want about ×1.1", initial, got)
		}
	}
	// The rate never passes Max.
	m := NewPacer(PacerOptions{Initial: 99, Min: 1, Max: 100, Now: newFakeClock().Now})
	for range 10 {
		m.Succeeded()
	}
	if got := m.Rate(); got != 100 {
		t.Errorf("Rate = %v, want capped at 100", got)
	}
}

func TestPacerMultiplicativeDecrease(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 100, Min: 20, Max: 1000, Now: clk.Now})
	p.Throttled(0)
	if got := p.Rate(); !approx(got, 70) {
		t.Fatalf("Rate after a throttle = %v, want 70 (default decrease 0.7)", got)
	}
	// A burst of 429s answering the same writes cuts the rate once per cooldown.
	for range 5 {
		clk.Advance(30 * time.Millisecond)
		p.Throttled(0)
	}
	if got := p.Rate(); !approx(got, 70) {
		t.Fatalf("Rate after throttles within the cooldown = %v, want still 70", got)
	}
	clk.Advance(200 * time.Millisecond) // default cooldown
	p.Throttled(0)
	if got := p.Rate(); !approx(got, 49) {
		t.Fatalf("Rate after the cooldown = %v, want 49", got)
	}
	for range 10 {
		clk.Advance(time.Second)
		p.Throttled(0)
	}
	if got := p.Rate(); got != 20 {
		t.Errorf("Rate = %v, want floored at Min 20", got)
	}
}

func TestPacerOptions(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 100, Min: 1, Max: 1000, Decrease: 0.5, Cooldown: 2 * time.Second, Now: clk.Now})
	p.Throttled(0)
	clk.Advance(time.Second)
	p.Throttled(0)
	if got := p.Rate(); !approx(got, 50) {
		t.Errorf("Rate = %v, want 50: Decrease 0.5 once within a 2s cooldown", got)
	}
	clk.Advance(time.Second)
	p.Throttled(0)
	if got := p.Rate(); !approx(got, 25) {
		t.Errorf("Rate = %v, want 25 after the cooldown", got)
	}
	for _, bad := range []float64{-1, 1, 1.5} {
		q := NewPacer(PacerOptions{Initial: 100, Min: 1, Max: 1000, Decrease: bad, Now: newFakeClock().Now})
		q.Throttled(0)
		if got := q.Rate(); !approx(got, 70) {
			t.Errorf("Decrease %v: Rate = %v, want the default 0.7 applied", bad, got)
		}
	}
	// Without a clock the pacer uses the real one.
	r := NewPacer(PacerOptions{Initial: 1, Min: 1, Max: 1})
	if _, ok := r.Reserve(0); !ok {
		t.Error("first Reserve on a real clock refused")
	}
	if d := r.Delay(); d <= 0 || d > time.Second {
		t.Errorf("Delay() = %v, want within (0, 1s]", d)
	}
}

func TestPacerThrottlePausesEveryWriter(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 1000, Min: 1, Max: 1000, Now: clk.Now})
	p.Throttled(2 * time.Second)
	if d := p.Delay(); d != 2*time.Second {
		t.Fatalf("Delay() = %v, want the 2s hint", d)
	}
	if w, ok := p.Reserve(time.Second); ok || w != 2*time.Second {
		t.Fatalf("Reserve(1s) = %v, %v; want 2s, false", w, ok)
	}
	// A shorter hint does not pull the pause in.
	p.Throttled(500 * time.Millisecond)
	if d := p.Delay(); d != 2*time.Second {
		t.Fatalf("Delay() after a shorter hint = %v, want still 2s", d)
	}
	clk.Advance(2 * time.Second)
	if w, ok := p.Reserve(0); !ok || w != 0 {
		t.Errorf("Reserve after the pause = %v, %v; want 0, true", w, ok)
	}
}

func TestPacerWait(t *testing.T) {
	p := NewPacer(PacerOptions{Initial: 1, Min: 1, Max: 1})
	if w, ok := p.Wait(context.Background(), 0); !ok || w != 0 {
		t.Fatalf("first Wait = %v, %v; want 0, true", w, ok)
	}
	// The next slot is ~1s away.
	w, ok := p.Wait(context.Background(), 10*time.Millisecond)
	if ok || w <= 10*time.Millisecond {
		t.Fatalf("Wait(10ms) = %v, %v; want refused with the real wait", w, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w, ok := p.Wait(ctx, time.Hour); ok || w <= 0 {
		t.Fatalf("Wait on a cancelled context = %v, %v; want refused", w, ok)
	}

	fast := NewPacer(PacerOptions{Initial: 200, Min: 1, Max: 200})
	fast.Reserve(0)
	start := time.Now()
	w, ok = fast.Wait(context.Background(), time.Second)
	if !ok || w <= 0 {
		t.Fatalf("Wait = %v, %v; want a short wait granted", w, ok)
	}
	if slept := time.Since(start); slept < w {
		t.Errorf("Wait returned after %v, before its slot at %v", slept, w)
	}
}

// TestPacerSettlesNearCapacity runs the pacer against a simulated store that accepts
// capacity writes per second (a token bucket) and throttles the rest with an honest hint.
// AIMD should find the capacity from far above and keep the throttled share small.
func TestPacerSettlesNearCapacity(t *testing.T) {
	const capacity = 100.0 // writes per second
	for _, initial := range []float64{1000, 5} {
		clk := newFakeClock()
		p := NewPacer(PacerOptions{Initial: initial, Min: 1, Max: 10000, Now: clk.Now})
		start := clk.Now()
		tokens, last := capacity/10, start // a bucket of 100 ms worth
		var accepted, throttled, acceptedLate, throttledLate int
		for clk.Now().Sub(start) < 60*time.Second {
			w, ok := p.Reserve(time.Hour)
			if !ok {
				t.Fatal("Reserve(1h) refused")
			}
			clk.Advance(w)
			now := clk.Now()
			tokens = math.Min(capacity/10, tokens+now.Sub(last).Seconds()*capacity)
			last = now
			late := now.Sub(start) > 30*time.Second
			if tokens >= 1 {
				tokens--
				accepted++
				if late {
					acceptedLate++
				}
				p.Succeeded()
				continue
			}
			throttled++
			if late {
				throttledLate++
			}
			p.Throttled(time.Duration((1 - tokens) / capacity * float64(time.Second)))
		}
		rate := float64(acceptedLate) / 30
		if rate < 0.7*capacity || rate > 1.05*capacity {
			t.Errorf("initial %v: accepted %.1f writes/s in the last 30s, want near %v", initial, rate, capacity)
		}
		if share := float64(throttledLate) / float64(acceptedLate+throttledLate); share > 0.1 {
			t.Errorf("initial %v: %.0f%% of late writes throttled, want under 10%%", initial, share*100)
		}
		if r := p.Rate(); r < 0.5*capacity || r > 2*capacity {
			t.Errorf("initial %v: final rate %.1f, want near %v", initial, r, capacity)
		}
		t.Logf("initial %v: accepted %d, throttled %d, final rate %.1f", initial, accepted, throttled, p.Rate())
	}
}

// TestPacersShareCapacity runs several instances' pacers against one simulated store:
// because growth is relative to each instance's rate, 16 instances must not throttle much
// more than 4 once they have found the capacity.
func TestPacersShareCapacity(t *testing.T) {
	const capacity = 200.0
	for _, instances := range []int{4, 16} {
		clk := newFakeClock()
		pacers := make([]*Pacer, instances)
		for i := range pacers {
			pacers[i] = NewPacer(PacerOptions{Initial: 20, Min: 1, Max: 10000, Now: clk.Now})
		}
		start := clk.Now()
		tokens, last := capacity/10, start
		var acceptedLate, throttledLate int
		// Each step lets every instance start the writes whose slots have come, then
		// moves the clock on by a millisecond.
		for clk.Now().Sub(start) < 60*time.Second {
			now := clk.Now()
			tokens = math.Min(capacity/10, tokens+now.Sub(last).Seconds()*capacity)
			last = now
			late := now.Sub(start) > 30*time.Second
			for _, p := range pacers {
				for {
					if w, ok := p.Reserve(0); !ok || w > 0 {
						break
					}
					if tokens >= 1 {
						tokens--
						p.Succeeded()
						if late {
							acceptedLate++
						}
						continue
					}
					p.Throttled(time.Duration((1 - tokens) / capacity * float64(time.Second)))
					if late {
						throttledLate++
					}
				}
			}
			clk.Advance(time.Millisecond)
		}
		rate := float64(acceptedLate) / 30
		share := float64(throttledLate) / float64(max(acceptedLate+throttledLate, 1))
		t.Logf("%d instances: %.1f writes/s accepted (capacity %v), %.1f%% throttled", instances, rate, capacity, share*100)
		if rate < 0.9*capacity {
			t.Errorf("%d instances: accepted %.1f writes/s, want near %v", instances, rate, capacity)
		}
		if share > 0.1 {
			t.Errorf("%d instances: %.1f%% of writes throttled, want under 10%%", instances, share*100)
		}
	}
}

// TestPacerRecoversAfterAStorm: a storm cuts the rate to Min; once the store has been
// quiet for Quiet, growth is fast again up to 60 % of the peak, so the rate is back near
// capacity in tens of seconds rather than the minutes 5 %-a-second growth alone would
// take from 1 write/s.
func TestPacerRecoversAfterAStorm(t *testing.T) {
	clk := newFakeClock()
	p := NewPacer(PacerOptions{Initial: 200, Min: 1, Max: 1000, Now: clk.Now})
	for range 40 { // a storm: a 429 every cooldown
		p.Throttled(0)
		clk.Advance(250 * time.Millisecond)
	}
	if r := p.Rate(); r != 1 {
		t.Fatalf("rate after the storm = %v, want Min 1", r)
	}
	// Write at the paced rate with every write accepted.
	start := clk.Now()
	var atQuiet float64
	for clk.Now().Sub(start) < 60*time.Second && p.Rate() < 180 {
		w, _ := p.Reserve(time.Hour)
		clk.Advance(w)
		p.Succeeded()
		if atQuiet == 0 && clk.Now().Sub(start) >= 9*time.Second {
			atQuiet = p.Rate()
		}
	}
	took := clk.Now().Sub(start)
	if atQuiet > 3 {
		t.Errorf("rate %.1f 9 s after the storm: fast growth began before the quiet period", atQuiet)
	}
	if p.Rate() < 180 || took > 40*time.Second {
		t.Fatalf("rate %.1f after %v of accepted writes, want 180 within 40 s", p.Rate(), took)
	}
	t.Logf("back at 180 writes/s %v after the storm (slow growth alone: about 104 s)", took.Round(100*time.Millisecond))
}
