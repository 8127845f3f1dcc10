package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/stack"
)

// shedSpec is the shedding scenario: synchronous PUTs at Load requests a second for
// Duration against a store that takes Rate writes a second, after an unloaded run at
// IdleLoad for IdleDuration that gives the reference latencies.
type shedSpec struct {
	Rate         float64
	Instances    int
	Load         float64
	Duration     time.Duration
	IdleLoad     float64
	IdleDuration time.Duration
}

// maxInFlight bounds the load generator's open requests; a request due while the bound
// is reached is counted as not sent rather than queued, so the arrival rate stays open.
const maxInFlight = 2000

// loadRun is what the callers of one run saw.
type loadRun struct {
	Duration time.Duration
	Sent     int
	NotSent  int
	// Accepted are the latencies of 2xx answers; Shed, of 429 and 503 answers.
	Accepted, Shed []time.Duration
	// ShedWithRetryAfter counts shed answers that carried Retry-After.
	ShedWithRetryAfter int
	// Failed counts other statuses and requests that got no answer.
	Failed   int
	Statuses map[int]int
}

func (r *loadRun) add(status int, retryAfter bool, latency time.Duration) {
	r.Sent++
	r.Statuses[status]++
	switch {
	case status >= 200 && status < 300:
		r.Accepted = append(r.Accepted, latency)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		r.Shed = append(r.Shed, latency)
		if retryAfter {
			r.ShedWithRetryAfter++
		}
	default:
		r.Failed++
	}
}

// ShedWithin counts shed answers that took at most d.
func (r *loadRun) ShedWithin(d time.Duration) int {
	n := 0
	for _, l := range r.Shed {
		if l <= d {
			n++
		}
	}
	return n
}

// shedResult is what one variant did in the shedding scenario.
type shedResult struct {
	Variant             string
	Spec                shedSpec
	Unloaded, Loaded    *loadRun
	Attempts, Throttled int64 // store writes during the loaded run
	Series              []faultproxy.Bucket
	BucketWidth         time.Duration
	// Load is the machine's 1-minute load average when the loaded run ended.
	Load string
}

// runShed starts a stack for v, warms every instance up, and runs the unloaded and then
// the loaded calls, spread round robin over the instances as a load balancer would.
func runShed(ctx context.Context, label string, spec shedSpec, v variant, progress io.Writer) (*shedResult, error) {
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	s, err := stack.Start(startCtx, stack.Options{
		Instances: spec.Instances, FaultProxy: true, WritesPerSecond: spec.Rate, NoFulfilment: true,
		Settings: v.Settings, ScriptRoot: v.ScriptRoot,
	})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var urls []string
	for _, h := range s.Hosts {
		urls = append(urls, h.URL())
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: maxInFlight, MaxIdleConnsPerHost: maxInFlight, IdleConnTimeout: 30 * time.Second,
	}}
	defer client.CloseIdleConnections()

	if err := warmUp(ctx, client, urls); err != nil {
		return nil, err
	}
	res := &shedResult{Variant: v.Name, Spec: spec}
	res.Unloaded = fire(ctx, client, urls, "idle", spec.IdleLoad, spec.IdleDuration, label+" unloaded", progress)
	// A second for the token bucket to fill again.
	time.Sleep(time.Second)
	s.Proxy.Reset()
	res.Loaded = fire(ctx, client, urls, "load", spec.Load, spec.Duration, label+" loaded", progress)
	res.Load = loadAverage()
	st := s.Proxy.Stats()
	res.Attempts, res.Throttled = st.WriteRequests, st.ThrottledWrites
	res.Series, res.BucketWidth = st.Series, st.BucketWidth
	return res, ctx.Err()
}

// warmUp stores one order through each instance, so that neither run pays for a
// handler's first connection to the store or its container check.
func warmUp(ctx context.Context, client *http.Client, urls []string) error {
	for i, u := range urls {
		var status int
		for range 80 {
			status, _, _ = put(ctx, client, u, "warm", i)
			if status == http.StatusOK || ctx.Err() != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if status != http.StatusOK {
			return fmt.Errorf("warming up %s: PUT answered %d", u, status)
		}
	}
	return nil
}

// fire sends PUTs at rate for d, open loop: each is sent when it is due whatever the
// answers to the earlier ones, as independent callers would.
func fire(ctx context.Context, client *http.Client, urls []string, prefix string, rate float64, d time.Duration, label string, progress io.Writer) *loadRun {
	run := &loadRun{Duration: d, Statuses: map[int]int{}}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(progressDone)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				mu.Lock()
				fmt.Fprintf(progress, "  %s %5.1fs  answered %5d  accepted %5d  shed %5d  failed %d  in flight %d\n",
					label, time.Since(start).Seconds(), run.Sent, len(run.Accepted), len(run.Shed), run.Failed, inFlight.Load())
				mu.Unlock()
			}
		}
	}()

	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		if inFlight.Load() >= maxInFlight {
			mu.Lock()
			run.NotSent++
			mu.Unlock()
			continue
		}
		inFlight.Add(1)
		wg.Go(func() {
			defer inFlight.Add(-1)
			status, retryAfter, latency := put(ctx, client, urls[i%len(urls)], prefix, i)
			mu.Lock()
			run.add(status, retryAfter, latency)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone
	slices.Sort(run.Accepted)
	slices.Sort(run.Shed)
	return run
}

// put stores order i through the host at base and reports the status (0 when no answer
// came), whether a Retry-After came with it, and how long the answer took.
func put(ctx context.Context, client *http.Client, base, prefix string, i int) (int, bool, time.Duration) {
	customer, id := orderKey(prefix, i)
	url := base + "/api/customers/" + customer + "/orders/" + id
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(orderJSON(customer, id)))
	if err != nil {
		return 0, false, 0
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, time.Since(start)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After") != "", time.Since(start)
}

// percentile is the nearest-rank percentile of sorted latencies; 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
