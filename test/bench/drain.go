package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/stack"
)

// drainSpec is a drain scenario: Orders waiting on the queue, drained by Instances
// handlers into a store that takes Rate writes a second.
type drainSpec struct {
	Orders    int
	Rate      float64
	Instances int
	// Limit is how long the drain may take before it is reported as not drained.
	Limit time.Duration
}

// drainResult is what one variant did in a drain scenario.
type drainResult struct {
	Variant string
	Spec    drainSpec
	// Drained is false when orders were still waiting at Limit.
	Drained bool
	// Drain runs from the store's first write attempt to the end of the last interval
	// in which it accepted a write.
	Drain time.Duration
	// Stored, Duplicated and Lost count orders: stored at least once, stored more than
	// once, and neither stored, poisoned nor still waiting. Poisoned counts messages in
	// the poison queue; Waiting, messages left on the queue at the end and orders not
	// yet put on it.
	Stored, Duplicated, Lost, Poisoned, Waiting int
	// MinBacklog is the fewest messages the queue held while orders were still being
	// added to it (see feeder).
	MinBacklog int
	// FirstWrite and HostsUp are when, after the handlers began to start, the store saw
	// the first write attempt and the last instance was up.
	FirstWrite, HostsUp time.Duration
	// Attempts and Throttled are write requests the store saw, and those it answered 429.
	Attempts, Throttled int64
	// Invocations and Failures are the hosts' queue and HTTP invocations and how many
	// of them failed.
	Invocations, Failures int64
	Series                []faultproxy.Bucket
	BucketWidth           time.Duration
	// Load is the machine's 1-minute load average when the drain ended.
	Load string
}

// Efficiency is the share of the store's capacity the drain used: the time the stored
// orders need at Rate over the time they took. It is the spec's (N / R) / drain time
// when every order is stored, and does not credit a variant for orders it gave up on.
func (r *drainResult) Efficiency() float64 {
	if r.Drain <= 0 {
		return 0
	}
	return float64(r.Stored) / r.Spec.Rate / r.Drain.Seconds()
}

// ThrottledShare is the share of write attempts answered 429.
func (r *drainResult) ThrottledShare() float64 {
	if r.Attempts == 0 {
		return 0
	}
	return float64(r.Throttled) / float64(r.Attempts)
}

// orderKey names the i-th order of a run as CountByID does: customer/id.
func orderKey(prefix string, i int) (customer, id string) {
	return fmt.Sprintf("cust-%03d", i%50), fmt.Sprintf("%s-%05d", prefix, i)
}

func orderJSON(customer, id string) string {
	return fmt.Sprintf(`{"id":%q,"customerId":%q,"items":[{"sku":"apple","quantity":1},{"sku":"pear","quantity":2}],"note":"benchmark order"}`, id, customer)
}

// runDrain starts a stack for v and drains spec.Orders orders through it: the orders
// queue holds a backlog before any handler starts and is topped up as they drain it
// (see feeder), until every order is queued and the queue is empty or spec.Limit has
// passed; then it reads the container and the poison queue.
func runDrain(ctx context.Context, label string, spec drainSpec, v variant, progress io.Writer) (*drainResult, error) {
	f := &feeder{orders: spec.Orders, backlog: backlogFor(spec.Instances)}
	var clockStart time.Time
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	s, err := stack.Start(startCtx, stack.Options{
		Instances: spec.Instances, FaultProxy: true, WritesPerSecond: spec.Rate, NoFulfilment: true,
		Settings: v.Settings, ScriptRoot: v.ScriptRoot,
		BeforeHosts: func(ctx context.Context, s *stack.Stack) error {
			if err := f.topUp(ctx, s, 0); err != nil {
				return fmt.Errorf("filling the orders queue: %w", err)
			}
			// The clock starts with the handlers, not with the proxy.
			s.Proxy.Reset()
			clockStart = time.Now()
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &drainResult{Variant: v.Name, Spec: spec, HostsUp: time.Since(clockStart)}

	feedCtx, stopFeeding := context.WithCancel(ctx)
	defer stopFeeding()
	feedErr := make(chan error, 1)
	go func() { feedErr <- f.run(feedCtx, s) }()
	res.Drained, err = waitDrained(ctx, s, f, label, spec, progress)
	stopFeeding()
	if ferr := <-feedErr; err == nil && ferr != nil && !errors.Is(ferr, context.Canceled) {
		err = fmt.Errorf("feeding the orders queue: %w", ferr)
	}
	if err != nil {
		return nil, err
	}
	// Let the last invocations settle their messages before reading the counters.
	time.Sleep(500 * time.Millisecond)
	res.Load = loadAverage()
	st := s.Proxy.Stats()
	res.Attempts, res.Throttled = st.WriteRequests, st.ThrottledWrites
	res.Series, res.BucketWidth = st.Series, st.BucketWidth
	res.FirstWrite, res.Drain = activeSpan(st.Series, st.BucketWidth)
	res.MinBacklog = f.minBacklog()
	for _, h := range s.Hosts {
		hs := h.Stats()
		res.Invocations += hs.Invocations
		res.Failures += hs.Failures
	}
	if err := countOutcome(ctx, s, spec.Orders, f.pending(), res); err != nil {
		return nil, err
	}
	return res, nil
}

// feeder keeps the orders queue at backlog messages until all the orders are queued.
//
// Azurite scans every message of a queue on each delete and receive (it clears expired
// ones first), so with thousands queued it, not the store, limits the drain: around 60
// deletes a second at 3,000 messages on two cores. A backlog of a few hundred keeps its
// cost small while the handlers never find the queue empty, which is what a drain
// measures: how much of the store's capacity the handlers use while work is waiting.
type feeder struct {
	orders, backlog int

	mu     sync.Mutex
	queued int // orders enqueued so far
	// least is the fewest messages seen on the queue while a full backlog of orders was
	// still to be queued; -1 before the hosts run.
	least int
}

// backlogFor covers what the instances hold invisible while they work on it (at most
// batchSize + newBatchThreshold each, 24 with the host's defaults) with room to spare.
func backlogFor(instances int) int {
	return 200 + 25*instances
}

// topUp enqueues orders until the queue holds f.backlog messages, given that it holds
// current now, or until every order is queued.
func (f *feeder) topUp(ctx context.Context, s *stack.Stack, current int) error {
	f.mu.Lock()
	from := f.queued
	n := min(f.backlog-current, f.orders-from)
	f.mu.Unlock()
	if n <= 0 {
		return nil
	}
	if err := enqueueOrders(ctx, s, "order", from, from+n); err != nil {
		return err
	}
	f.mu.Lock()
	f.queued += n
	f.mu.Unlock()
	return nil
}

// run tops the queue up every 50 ms until every order is queued, and records the
// fewest messages it saw there meanwhile.
func (f *feeder) run(ctx context.Context, s *stack.Stack) error {
	f.mu.Lock()
	f.least = -1
	f.mu.Unlock()
	for !f.done() {
		current, err := s.ApproximateCount(ctx, "orders")
		if err != nil {
			return err
		}
		f.mu.Lock()
		// Near the end the queue runs down because no orders are left to add.
		if f.orders-f.queued >= f.backlog && (f.least < 0 || current < f.least) {
			f.least = current
		}
		f.mu.Unlock()
		if err := f.topUp(ctx, s, current); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// pending is how many orders are still to be queued.
func (f *feeder) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.orders - f.queued
}

func (f *feeder) done() bool { return f.pending() == 0 }

func (f *feeder) minBacklog() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.least
}

// enqueueOrders puts orders [from, to) on the orders queue.
func enqueueOrders(ctx context.Context, s *stack.Stack, prefix string, from, to int) error {
	return parallel(from, to, func(i int) error {
		customer, id := orderKey(prefix, i)
		return s.Enqueue(ctx, "orders", orderJSON(customer, id))
	})
}

// parallel calls fn for every i in [from, to), 16 at a time, and returns the first error.
func parallel(from, to int, fn func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

// waitDrained polls the queue until every order is queued and the queue is empty,
// printing progress every two seconds. It reports false when spec.Limit passes first.
func waitDrained(ctx context.Context, s *stack.Stack, f *feeder, label string, spec drainSpec, progress io.Writer) (bool, error) {
	start := time.Now()
	deadline := start.Add(spec.Limit)
	lastPrint, lastWritten := start, int64(0)
	for {
		queued, err := s.ApproximateCount(ctx, "orders")
		if err != nil {
			return false, err
		}
		waiting := queued + f.pending()
		if waiting == 0 {
			return true, nil
		}
		now := time.Now()
		if now.Sub(lastPrint) >= 2*time.Second {
			st := s.Proxy.Stats()
			rate := float64(st.WritesForwarded-lastWritten) / now.Sub(lastPrint).Seconds()
			fmt.Fprintf(progress, "  %s %5.1fs  written %5d/%d  %4.0f writes/s  throttled %d (%.1f%% of attempts)  waiting %d\n",
				label, now.Sub(start).Seconds(), st.WritesForwarded, spec.Orders, rate, st.ThrottledWrites,
				100*share(st.ThrottledWrites, st.WriteRequests), waiting)
			lastPrint, lastWritten = now, st.WritesForwarded
		}
		if now.After(deadline) {
			fmt.Fprintf(progress, "  %s did not drain in %v: %d orders waiting\n", label, spec.Limit, waiting)
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func share(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// activeSpan returns when the first interval with a write attempt began, and the time
// from then to the end of the last interval with a write the store accepted.
func activeSpan(series []faultproxy.Bucket, width time.Duration) (first, span time.Duration) {
	i0, last := -1, -1
	for i, b := range series {
		if i0 < 0 && b.WritesForwarded+b.WritesThrottled+b.WritesFaulted > 0 {
			i0 = i
		}
		if b.WritesForwarded > 0 {
			last = i
		}
	}
	if i0 < 0 || last < i0 {
		return 0, 0
	}
	return time.Duration(i0) * width, time.Duration(last-i0+1) * width
}

// countOutcome reads the container and the poison queue and fills res's order counts;
// unqueued is how many of the orders were never put on the queue.
func countOutcome(ctx context.Context, s *stack.Stack, orders, unqueued int, res *drainResult) error {
	stored, err := s.CountByID(ctx)
	if err != nil {
		return fmt.Errorf("reading the container: %w", err)
	}
	if res.Poisoned, err = s.ApproximateCount(ctx, "orders-poison"); err != nil {
		return err
	}
	queued, err := s.ApproximateCount(ctx, "orders")
	if err != nil {
		return err
	}
	res.Waiting = queued + unqueued
	poisoned, err := poisonedKeys(ctx, s)
	if err != nil {
		return fmt.Errorf("reading the poison queue: %w", err)
	}
	missing := 0
	for i := range orders {
		customer, id := orderKey("order", i)
		key := customer + "/" + id
		switch n := stored[key]; {
		case n > 1:
			res.Duplicated++
			res.Stored++
		case n == 1:
			res.Stored++
		case !poisoned[key]:
			missing++
		}
	}
	// Orders still waiting are late, not lost; which queued ones they are is not read.
	res.Lost = max(0, missing-res.Waiting)
	return nil
}

// poisonedKeys takes every message off orders-poison and names the orders in them. The
// host copies a message there as it was stored (base64 of the order); Sluice writes a
// JSON document whose "message" member is the order's text.
func poisonedKeys(ctx context.Context, s *stack.Stack) (map[string]bool, error) {
	svc, err := azqueue.NewServiceClientFromConnectionString(s.Azurite.ConnectionString, nil)
	if err != nil {
		return nil, err
	}
	q := svc.NewQueueClient("orders-poison")
	keys := map[string]bool{}
	n, vis := int32(32), int32(600)
	for range 10000 {
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
		if err != nil {
			if strings.Contains(err.Error(), "QueueNotFound") {
				return keys, nil
			}
			return nil, err
		}
		if len(resp.Messages) == 0 {
			return keys, nil
		}
		for _, m := range resp.Messages {
			if m.MessageText != nil {
				if key, ok := poisonedOrder(*m.MessageText); ok {
					keys[key] = true
				}
			}
		}
	}
	return keys, nil
}

// poisonedOrder finds the order's customer/id in a poison message.
func poisonedOrder(text string) (string, bool) {
	for range 3 {
		if b, err := base64.StdEncoding.DecodeString(text); err == nil {
			text = string(b)
		}
		var m struct {
			ID         string `json:"id"`
			CustomerID string `json:"customerId"`
			Message    string `json:"message"`
		}
		if json.Unmarshal([]byte(text), &m) != nil {
			return "", false
		}
		if m.ID != "" {
			return m.CustomerID + "/" + m.ID, true
		}
		text = m.Message
	}
	return "", false
}
