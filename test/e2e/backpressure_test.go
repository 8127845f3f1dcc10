package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/stack"
)

// attemptClock records when the proxy saw each write attempt for one document, from a
// Rule.If hook that runs on every candidate request.
type attemptClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *attemptClock) matcher(id string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		var doc struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &doc) != nil || doc.ID != id {
			return false
		}
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
		return true
	}
}

func (c *attemptClock) gaps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(c.times); i++ {
		g = append(g, c.times[i].Sub(c.times[i-1]))
	}
	return g
}

func orderJSON(id, customer string) string {
	return fmt.Sprintf(`{"id":%q,"customerId":%q,"items":[{"sku":"apple","quantity":1}]}`, id, customer)
}

// waitStored waits until the stand-in holds the order.
func waitStored(t testing.TB, s *stack.Stack, customer, id string, limit time.Duration) {
	t.Helper()
	eventually(t, limit, func() (string, bool) {
		_, ok, err := s.Item(context.Background(), customer, id)
		if err != nil {
			return err.Error(), false
		}
		return "not stored", ok
	})
}

// TestThrottleHintIsHonoured scripts three 429s with x-ms-retry-after-ms and expects one
// logical write in four attempts, each retry waiting at least the hint.
func TestThrottleHintIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hintMS string
		// minGap is the least each retry must wait; maxGap, when set, the most, so a
		// zero hint is shown to be taken at its word rather than replaced by a backoff.
		minGap, maxGap time.Duration
	}{
		{"hint-1500ms", "1500", 1500 * time.Millisecond, 0},
		{"hint-0", "0", 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true})
			id := "throttled-" + tc.name
			clock := &attemptClock{}
			s.Proxy.Script(faultproxy.Rule{
				Match: faultproxy.Writes, If: clock.matcher(id), Times: 3, Status: http.StatusTooManyRequests,
				Headers: map[string]string{"x-ms-retry-after-ms": tc.hintMS, "x-ms-substatus": "3200"},
			}, faultproxy.Rule{
				// Once the 429s are spent this rule sees the accepted attempt, so the
				// clock records it too; a nanosecond of latency changes nothing else.
				Match: faultproxy.Writes, If: clock.matcher(id), For: time.Minute, Latency: time.Nanosecond,
			})
			start := time.Now()
			if err := s.Enqueue(context.Background(), "orders", orderJSON(id, "c-throttle")); err != nil {
				t.Fatal(err)
			}
			waitStored(t, s, "c-throttle", id, 30*time.Second)
			elapsed := time.Since(start)
			st := s.Proxy.Stats()
			if n := st.WriteAttempts[id]; n != 4 {
				t.Errorf("write attempts = %d, want 4 (3 throttled, 1 accepted)", n)
			}
			gaps := clock.gaps()
			if len(gaps) < 3 {
				t.Fatalf("saw %d attempts, want at least 4", len(gaps)+1)
			}
			var waited time.Duration
			for i, g := range gaps[:3] {
				waited += g
				if g < tc.minGap {
					t.Errorf("retry %d came %v after the 429, before the %v hint", i+1, g, tc.minGap)
				}
				if tc.maxGap > 0 && g > tc.maxGap {
					t.Errorf("retry %d came %v after a zero hint, want prompt (under %v)", i+1, g, tc.maxGap)
				}
			}
			t.Logf("hint %sms: 4 attempts, %v waited between them, stored %v after enqueue", tc.hintMS, waited.Round(time.Millisecond), elapsed.Round(time.Millisecond))
			if n, _ := s.ApproximateCount(context.Background(), "orders-poison"); n != 0 {
				t.Errorf("orders-poison holds %d messages, want 0", n)
			}
		})
	}
}

// TestLongThrottleHintDefersTheMessage answers with a 90 s hint, longer than the
// invocation has left: the handler must not wait it out, and the message must come back
// later instead of being lost or poisoned.
func TestLongThrottleHintDefersTheMessage(t *testing.T) {
	s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true, Settings: shortTimeoutSettings()})
	ctx := context.Background()
	id := "hint-90s"
	s.Proxy.Script(faultproxy.Rule{
		Match: faultproxy.Writes, Times: 1000, For: 10 * time.Minute, Status: http.StatusTooManyRequests,
		Headers: map[string]string{"x-ms-retry-after-ms": "90000", "x-ms-substatus": "3200"},
	})
	start := time.Now()
	if err := s.Enqueue(ctx, "orders", orderJSON(id, "c-long")); err != nil {
		t.Fatal(err)
	}
	// The invocation ends with the message requeued, invisible, carrying its attempt
	// count; the host deletes the original once the invocation has succeeded.
	eventually(t, 15*time.Second, func() (string, bool) {
		st := s.Hosts[0].Stats()
		n, _ := s.ApproximateCount(ctx, "orders")
		visible, _ := s.Peek(ctx, "orders")
		return fmt.Sprintf("%+v, %d queued, %d visible", st, n, len(visible)),
			s.Proxy.Stats().WriteAttempts[id] >= 1 && quiet(s) && n == 1 && len(visible) == 0
	})
	elapsed := time.Since(start)
	if got := s.Proxy.Stats().WriteAttempts[id]; got != 1 {
		t.Errorf("write attempts = %d, want 1: a 90 s hint does not fit in the invocation", got)
	}
	if st := s.Hosts[0].Stats(); st.Failures != 0 || st.Timeouts != 0 {
		t.Errorf("host saw %d failures and %d timeouts, want the invocation to end cleanly", st.Failures, st.Timeouts)
	}
	msgs, err := s.Peek(ctx, "orders")
	if err != nil || len(msgs) != 0 {
		t.Errorf("the deferred message is visible already: %v (%v)", msgs, err)
	}
	if n, _ := s.ApproximateCount(ctx, "orders-poison"); n != 0 {
		t.Errorf("orders-poison holds %d messages, want 0", n)
	}
	t.Logf("90 s hint: one attempt, invocation settled %v after enqueue, message deferred", elapsed.Round(time.Millisecond))
}

// quiet reports whether no invocation is running on any host.
func quiet(s *stack.Stack) bool {
	for _, h := range s.Hosts {
		st := h.Stats()
		if st.Invocations == 0 {
			return false
		}
	}
	// An invocation is over once the handler's health shows no write in flight.
	for _, h := range s.Hosts {
		if d, ok := health(h.URL())["cosmos-writes"]; !ok || d.Limiter.InFlight != 0 {
			return false
		}
	}
	return true
}

// shortTimeoutSettings shrink functionTimeout to 20 s and every budget with it, so the
// handler's own validation accepts them.
func shortTimeoutSettings() map[string]string {
	return map[string]string{
		"AzureFunctionsJobHost__functionTimeout": "00:00:20",
		"INVOCATION_SAFETY_MARGIN":               "3s",
		"COSMOS_OPERATION_TIMEOUT":               "15s",
		"COSMOS_THROTTLE_MAX_WAIT":               "10s",
		"COSMOS_QUEUE_WAIT":                      "10s",
		"FULFILMENT_ATTEMPT_TIMEOUT":             "2s",
		"FULFILMENT_MAX_RETRIES":                 "1",
		"FULFILMENT_MAX_WAIT":                    "5s",
	}
}

type dependencyState struct {
	Name    string `json:"name"`
	Breaker struct {
		State            string `json:"state"`
		RemainingDelayMS int64  `json:"remainingDelayMs"`
	} `json:"circuitBreaker"`
	Limiter struct {
		MaxConcurrency int   `json:"maxConcurrency"`
		InFlight       int64 `json:"inFlight"`
		PeakInFlight   int64 `json:"peakInFlight"`
	} `json:"limiter"`
	Counts map[string]int64 `json:"counts"`
}

// health reads /api/health from one host and indexes the dependencies by name.
func health(base string) map[string]dependencyState {
	resp, err := http.Get(base + "/api/health")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var h struct {
		Dependencies []dependencyState `json:"dependencies"`
	}
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return nil
	}
	out := map[string]dependencyState{}
	for _, d := range h.Dependencies {
		out[d.Name] = d
	}
	return out
}

// TestThousandOrdersFourInstancesThrottledStore is the scale-out case: four instances
// drain 1,000 queued orders into a store that allows 50 writes a second in all.
func TestThousandOrdersFourInstancesThrottledStore(t *testing.T) {
	if testing.Short() {
		t.Skip("drains 1,000 orders at 50 writes/s")
	}
	const orders, instances, rate = 1000, 4, 50
	s := stack.StartT(t, stack.Options{Instances: instances, FaultProxy: true, WritesPerSecond: rate, NoFulfilment: true})
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, orders)
	sem := make(chan struct{}, 32)
	for i := range orders {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.Enqueue(ctx, "orders", orderJSON(fmt.Sprintf("bulk-%04d", i), fmt.Sprintf("cust-%02d", i%40))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	start := time.Now()

	maxConc := 0
	peak := make([]int64, instances)
	counts := eventually(t, 5*time.Minute, func() (string, bool) {
		for i, h := range s.Hosts {
			if d, ok := health(h.URL())["cosmos-writes"]; ok {
				peak[i] = max(peak[i], d.Limiter.PeakInFlight)
				maxConc = d.Limiter.MaxConcurrency
			}
		}
		c, err := s.CountByID(ctx)
		if err != nil {
			return err.Error(), false
		}
		return fmt.Sprintf("%d stored", len(c)), len(c) >= orders
	})
	drained := time.Since(start)
	_ = counts
	waitQueueEmpty(t, s, "orders")

	stored, err := s.CountByID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orders {
		key := fmt.Sprintf("cust-%02d/bulk-%04d", i%40, i)
		if stored[key] != 1 {
			t.Errorf("%s stored %d times, want 1", key, stored[key])
		}
	}
	if len(stored) != orders {
		t.Errorf("container holds %d distinct orders, want %d", len(stored), orders)
	}
	if n, _ := s.ApproximateCount(ctx, "orders-poison"); n != 0 {
		t.Errorf("orders-poison holds %d messages, want 0", n)
	}
	for i, h := range s.Hosts {
		if d, ok := health(h.URL())["cosmos-writes"]; ok {
			peak[i] = max(peak[i], d.Limiter.PeakInFlight)
		}
		if peak[i] > int64(maxConc) || maxConc == 0 {
			t.Errorf("instance %d: peak in-flight writes %d, limit %d", i, peak[i], maxConc)
		}
	}
	st := s.Proxy.Stats()
	attempts := float64(st.WriteRequests) / orders
	share := float64(st.ThrottledWrites) / float64(max(st.WriteRequests, 1))
	var hostInv, hostFail int64
	for _, h := range s.Hosts {
		hs := h.Stats()
		hostInv += hs.Invocations
		hostFail += hs.Failures
	}
	t.Logf("1,000 orders, %d instances, %d writes/s: drained in %v; %d write attempts (%.2f per logical write), %d throttled (%.1f%%), %d forwarded; %d failed invocations (of %d, health polls included); peak in-flight per instance %v (limit %d)",
		instances, rate, drained.Round(time.Millisecond), st.WriteRequests, attempts, st.ThrottledWrites, share*100, st.WritesForwarded, hostFail, hostInv, peak, maxConc)
}

// TestPermanentCosmosRefusalsArePoisonedOnce covers the answers no retry can fix: 413,
// and 400 with substatus 1001 (partition key mismatch). Each gets one attempt and goes to
// orders-poison on its first delivery with the reason.
func TestPermanentCosmosRefusalsArePoisonedOnce(t *testing.T) {
	var console syncWriter
	console.b = &strings.Builder{}
	s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true, Console: &console})
	ctx := context.Background()

	// The partition key header must always come from the item: record any write whose
	// header disagrees with its body.
	var mismatchMu sync.Mutex
	var mismatches []string
	checkPK := func(r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		var doc struct {
			CustomerID string `json:"customerId"`
		}
		if json.Unmarshal(b, &doc) == nil && doc.CustomerID != "" {
			want, _ := json.Marshal([]string{doc.CustomerID})
			if got := r.Header.Get("x-ms-documentdb-partitionkey"); got != string(want) {
				mismatchMu.Lock()
				mismatches = append(mismatches, got+" vs "+string(want))
				mismatchMu.Unlock()
			}
		}
		return false
	}
	byID := func(id string) func(*http.Request) bool {
		return func(r *http.Request) bool {
			b, _ := io.ReadAll(r.Body)
			return strings.Contains(string(b), `"id":"`+id+`"`)
		}
	}
	s.Proxy.Script(
		// checkPK never matches, so its nanosecond of latency is never applied.
		faultproxy.Rule{Match: faultproxy.Writes, If: checkPK, For: time.Hour, Latency: time.Nanosecond},
		faultproxy.Rule{Match: faultproxy.Writes, If: byID("too-large"), Times: 100, Status: http.StatusRequestEntityTooLarge},
		faultproxy.Rule{Match: faultproxy.Writes, If: byID("pk-mismatch"), Times: 100, Status: http.StatusBadRequest,
			Headers: map[string]string{"x-ms-substatus": "1001"}},
	)
	for _, id := range []string{"too-large", "pk-mismatch"} {
		if err := s.Enqueue(ctx, "orders", orderJSON(id, "c-perm")); err != nil {
			t.Fatal(err)
		}
	}
	msgs := eventually(t, 30*time.Second, func() ([]stack.QueueMessage, bool) {
		m, err := s.Peek(ctx, "orders-poison")
		return m, err == nil && len(m) == 2
	})
	reasons := map[string]int{}
	for _, m := range msgs {
		var pm struct {
			Reason       string `json:"reason"`
			Detail       string `json:"detail"`
			DequeueCount int    `json:"dequeueCount"`
			Message      string `json:"message"`
		}
		if err := json.Unmarshal([]byte(m.Text), &pm); err != nil {
			t.Fatalf("poison message %q: %v", m.Text, err)
		}
		reasons[pm.Reason] = pm.DequeueCount
		if pm.Message == "" {
			t.Errorf("poison message for %s does not carry the original", pm.Reason)
		}
	}
	if len(reasons) != 2 {
		t.Errorf("poison reasons %v, want two distinct reasons", reasons)
	}
	for r, dc := range reasons {
		if dc != 1 {
			t.Errorf("%s poisoned at dequeue count %d, want 1", r, dc)
		}
	}
	st := s.Proxy.Stats()
	for _, id := range []string{"too-large", "pk-mismatch"} {
		if n := st.WriteAttempts[id]; n != 1 {
			t.Errorf("%s: %d write attempts, want 1", id, n)
		}
	}
	if !strings.Contains(console.String(), `"substatus":1001`) {
		t.Errorf("no log line carries substatus 1001; console:\n%s", console.String())
	}
	mismatchMu.Lock()
	defer mismatchMu.Unlock()
	if len(mismatches) > 0 {
		t.Errorf("partition key header differs from the item's customerId: %v", mismatches)
	}
	t.Logf("poison reasons: %v", reasons)
}

// TestOversizedBodiesAreRefused sends a 6 MB body to both HTTP write paths: 413, and
// nothing enqueued or written.
func TestOversizedBodiesAreRefused(t *testing.T) {
	s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true})
	big := `{"id":"huge","customerId":"c-big","items":[{"sku":"x","quantity":1}],"note":"` + strings.Repeat("x", 6<<20) + `"}`
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/api/orders"},
		{http.MethodPut, "/api/customers/c-big/orders/huge"},
	} {
		r := do(t, tc.method, s.URL()+tc.path, "application/json", big)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with 6 MB = %d %s, want 413", tc.method, tc.path, r.status, truncateBody(r.body))
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: Content-Type %q, want application/problem+json", tc.path, ct)
		}
	}
	if n, _ := s.ApproximateCount(context.Background(), "orders"); n != 0 {
		t.Errorf("orders holds %d messages, want 0", n)
	}
	if st := s.Proxy.Stats(); st.WriteRequests != 0 {
		t.Errorf("%d writes reached the store, want 0", st.WriteRequests)
	}
}

// TestItemOverCosmosLimitIsRefusedBeforeSending raises the HTTP body limit above Cosmos'
// 2 MB item limit, so the store's own check is what refuses the item.
func TestItemOverCosmosLimitIsRefusedBeforeSending(t *testing.T) {
	s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true,
		Settings: map[string]string{"HTTP_MAX_BODY_BYTES": fmt.Sprint(4 << 20)}})
	big := `{"id":"big","customerId":"c-big","items":[{"sku":"x","quantity":1}],"note":"` + strings.Repeat("x", 2<<20+1024) + `"}`
	r := do(t, http.MethodPut, s.URL()+"/api/customers/c-big/orders/big", "application/json", big)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT with a 2 MB+ item = %d %s, want 413", r.status, truncateBody(r.body))
	}
	if st := s.Proxy.Stats(); st.WriteRequests > 1 {
		t.Errorf("%d write attempts for an item over the limit, want at most 1", st.WriteRequests)
	}
	if _, ok, _ := s.Item(context.Background(), "c-big", "big"); ok {
		t.Error("the oversized item was stored")
	}
}

func truncateBody(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// TestDuplicateDeliveryWritesOnce breaks the connection after the store has written the
// item, so the handler cannot know the write happened; with the client's own retries off,
// the message comes back and its second delivery must find the item and change nothing.
func TestDuplicateDeliveryWritesOnce(t *testing.T) {
	var console syncWriter
	console.b = &strings.Builder{}
	s := stack.StartT(t, stack.Options{FaultProxy: true, NoFulfilment: true, Console: &console,
		Settings: map[string]string{"COSMOS_SDK_MAX_RETRIES": "0", "QUEUE_REQUEUE_BASE_DELAY": "1s"}})
	ctx := context.Background()
	s.Proxy.Script(faultproxy.Rule{Match: faultproxy.Writes, Times: 1, Reset: faultproxy.ResetMidResponse})
	if err := s.Enqueue(ctx, "orders", orderJSON("dup-1", "c-dup")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (string, bool) {
		return "no duplicate logged", strings.Contains(console.String(), `"outcome":"duplicate"`)
	})
	waitQueueEmpty(t, s, "orders")
	counts, err := s.CountByID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts["c-dup/dup-1"] != 1 {
		t.Errorf("dup-1 stored %d times, want 1", counts["c-dup/dup-1"])
	}
	st := s.Proxy.Stats()
	if st.WriteAttempts["dup-1"] < 2 || st.Faults[faultproxy.FaultReset] == 0 && st.Faults[faultproxy.FaultTruncate] == 0 {
		t.Errorf("attempts %d, faults %v: the scripted reset did not happen", st.WriteAttempts["dup-1"], st.Faults)
	}
	if n, _ := s.ApproximateCount(ctx, "orders-poison"); n != 0 {
		t.Errorf("orders-poison holds %d messages, want 0", n)
	}
}

// TestSynchronousWriteShedsUnderSaturation saturates the store behind PUT and expects the
// overflow to be turned away at once with 429 or 503 and a Retry-After, while the
// accepted writes succeed.
func TestSynchronousWriteShedsUnderSaturation(t *testing.T) {
	s := stack.StartT(t, stack.Options{FaultProxy: true, WritesPerSecond: 5, NoFulfilment: true,
		Settings: map[string]string{"COSMOS_MAX_CONCURRENCY": "2", "HTTP_SHED_MAX_WAIT": "50ms"}})
	const callers = 40
	type result struct {
		status     int
		retryAfter string
		latency    time.Duration
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := orderJSON(fmt.Sprintf("sync-%02d", i), "c-sync")
			req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/api/customers/c-sync/orders/sync-%02d", s.URL(), i), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results[i] = result{status: -1}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i] = result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), latency: time.Since(start)}
		}()
	}
	wg.Wait()
	var ok, shed []time.Duration
	for i, r := range results {
		switch r.status {
		case http.StatusOK, http.StatusCreated:
			ok = append(ok, r.latency)
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			shed = append(shed, r.latency)
			if r.retryAfter == "" {
				t.Errorf("caller %d: %d without Retry-After", i, r.status)
			}
		default:
			t.Errorf("caller %d: status %d", i, r.status)
		}
	}
	if len(shed) == 0 {
		t.Fatalf("no caller was shed under a store taking 5 writes/s with 2 in flight; %d succeeded", len(ok))
	}
	if len(ok) == 0 {
		t.Fatal("every caller was shed; the accepted share must still be served")
	}
	slices.Sort(ok)
	slices.Sort(shed)
	// A shed answer must come from the limiter, not from a timeout: far below the
	// operation timeout.
	if worst := shed[len(shed)-1]; worst > 5*time.Second {
		t.Errorf("slowest shed answer took %v; shedding must not hold the caller", worst)
	}
	t.Logf("%d callers: %d accepted (p50 %v, max %v), %d shed (p50 %v, max %v)", callers,
		len(ok), ok[len(ok)/2].Round(time.Millisecond), ok[len(ok)-1].Round(time.Millisecond),
		len(shed), shed[len(shed)/2].Round(time.Millisecond), shed[len(shed)-1].Round(time.Millisecond))
	sort.Slice(results, func(i, j int) bool { return results[i].status < results[j].status })
}
