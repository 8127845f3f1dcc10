package faults

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/stack"
)

// The settings every fault case runs with. Deferred messages come back after 1 s, 2 s, 4 s
// … capped at 10 s instead of 5 s … 5 min, so a case drains within seconds of the fault
// ending; the faults themselves last as long as the cases say.
var caseSettings = map[string]string{
	"QUEUE_REQUEUE_BASE_DELAY": "1s",
	"QUEUE_REQUEUE_MAX_DELAY":  "10s",
}

// startCase starts a stack for one fault case with caseSettings under o.Settings, and
// collects the handlers' console.
func startCase(t *testing.T, o stack.Options) (*stack.Stack, *Console) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault cases run for a minute or more each")
	}
	t.Parallel()
	settings := maps.Clone(caseSettings)
	maps.Copy(settings, o.Settings)
	o.Settings = settings
	con := &Console{}
	o.Console = con
	s := stack.StartT(t, o)
	// The handler creates the database and container in the background once it is up;
	// a fault that starts before that tests start-up, not the pipeline.
	WaitFor(t, "the cosmos container to be ready", time.Minute, func() bool {
		return con.Count("msg", "cosmos container ready") >= len(s.Hosts)
	})
	return s, con
}

// settleOrders waits for every order to be stored or poisoned, checks the accounting and
// that nothing was poisoned: every fault in this file is transient, and a transient
// failure never poisons a valid order.
func settleOrders(t *testing.T, s *stack.Stack, orders []Order, limit time.Duration) Tally {
	t.Helper()
	tally := OrdersLedger(s).Settle(t, Keys(orders), limit)
	Check(t, "orders", tally)
	if tally.Poisoned > 0 {
		t.Errorf("%d valid orders poisoned by a transient fault: %v", tally.Poisoned, tally.Reasons)
	}
	return tally
}

// outcomes counts what the process function logged for the orders, by outcome.
type outcomes struct{ written, duplicate, deferred int }

func processOutcomes(con *Console) outcomes {
	return outcomes{
		written:   con.Count("function", "process", "outcome", "written"),
		duplicate: con.Count("function", "process", "outcome", "duplicate"),
		deferred:  con.Count("function", "process", "outcome", "deferred"),
	}
}

// TestThrottleStormThenRecovery answers every Cosmos read and write with 429 for 60 s
// while orders arrive, then lets them through.
func TestThrottleStormThenRecovery(t *testing.T) {
	s, con := startCase(t, stack.Options{FaultProxy: true, NoFulfilment: true})
	ctx := context.Background()
	const storm = 60 * time.Second
	orders := NewOrders("storm", 100)
	s.Proxy.Script(faultproxy.Rule{Match: faultproxy.Writes | faultproxy.Reads, For: storm, Status: http.StatusTooManyRequests,
		Headers: map[string]string{"x-ms-retry-after-ms": "500", "x-ms-substatus": "3200"}})
	begin := time.Now()
	if err := SendOver(ctx, s, orders, storm*3/4); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(begin.Add(storm)))
	during := s.Proxy.Stats()
	if during.WritesForwarded != 0 {
		t.Errorf("%d writes reached the store during the storm", during.WritesForwarded)
	}
	tally := settleOrders(t, s, orders, 3*time.Minute)
	drained := time.Since(begin.Add(storm))
	st := s.Proxy.Stats()
	o := processOutcomes(con)
	t.Logf("429 storm %v: %s; %d write attempts (%d answered 429 during the storm), %d deferrals, %d written, %d duplicate deliveries; drained %v after the storm",
		storm, tally, st.WriteRequests, during.FaultStatuses[http.StatusTooManyRequests], o.deferred, o.written, o.duplicate, drained.Round(time.Second))
}

// TestIntermittentStoreFaults runs the faults that hit some Cosmos requests for a while
// as orders arrive: 503 on one request in three for 30 s; 5 s added to every call for
// 20 s, longer than the client's 4 s per-try timeout; and every third response cut in
// half after the store applied the request, so the handler cannot know a write happened.
func TestIntermittentStoreFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("each fault lasts 20 s or more")
	}
	t.Parallel()
	for _, tc := range []struct {
		name     string
		prefix   string // of the order ids
		orders   int
		window   time.Duration
		settings map[string]string
		inject   func(p *faultproxy.Proxy, window time.Duration)
		// injected counts the faults the proxy applied, from its stats.
		injected func(st faultproxy.Stats) int64
	}{
		{
			name: "503 on 1 request in 3", prefix: "flaky", orders: 100, window: 30 * time.Second,
			inject: func(p *faultproxy.Proxy, w time.Duration) {
				p.Script(faultproxy.Rule{Match: faultproxy.Any, Every: 3, For: w, Status: http.StatusServiceUnavailable})
			},
			injected: func(st faultproxy.Stats) int64 { return st.FaultStatuses[http.StatusServiceUnavailable] },
		},
		{
			name: "5s added to every call", prefix: "slow", orders: 60, window: 20 * time.Second,
			settings: map[string]string{"COSMOS_SDK_TRY_TIMEOUT": "4s"},
			inject:   func(p *faultproxy.Proxy, w time.Duration) { p.SetLatency(5*time.Second, w) },
			injected: func(st faultproxy.Stats) int64 { return st.Faults[faultproxy.FaultLatency] },
		},
		{
			name: "every 3rd response cut", prefix: "cut", orders: 100, window: 20 * time.Second,
			inject: func(p *faultproxy.Proxy, w time.Duration) {
				p.Script(faultproxy.Rule{Match: faultproxy.Any, Every: 3, For: w, Reset: faultproxy.ResetMidResponse})
			},
			injected: func(st faultproxy.Stats) int64 { return st.Faults[faultproxy.FaultTruncate] },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, con := startCase(t, stack.Options{FaultProxy: true, NoFulfilment: true, Settings: tc.settings})
			orders := NewOrders(tc.prefix, tc.orders)
			tc.inject(s.Proxy, tc.window)
			if err := SendOver(context.Background(), s, orders, tc.window*3/4); err != nil {
				t.Fatal(err)
			}
			tally := settleOrders(t, s, orders, tc.window+2*time.Minute)
			st := s.Proxy.Stats()
			injected := tc.injected(st)
			if injected == 0 {
				t.Errorf("no fault was injected; the case tested nothing")
			}
			o := processOutcomes(con)
			timeouts := con.Count("function", "process", "outcome", "deferred", "reason", "cosmos-timeout")
			t.Logf("%s for %v: %s; %d Cosmos requests, %d faulted, %d write attempts, %d forwarded; %d deferrals (%d on timeouts), %d written, %d found already stored",
				tc.name, tc.window, tally, st.Requests, injected, st.WriteRequests, st.WritesForwarded, o.deferred, timeouts, o.written, o.duplicate)
		})
	}
}

// TestStoreOutage takes the store down for 30 s while orders arrive. The circuit
// breaker must open, so that the store sees only a bounded number of attempts while it
// is down, and everything must drain once it is back.
func TestStoreOutage(t *testing.T) {
	const sdkRetries, minRequests, successThreshold = 2, 10, 2
	const breakerDelay = 5 * time.Second
	s, con := startCase(t, stack.Options{FaultProxy: true, NoFulfilment: true, Settings: map[string]string{
		"COSMOS_SDK_MAX_RETRIES":           strconv.Itoa(sdkRetries),
		"COSMOS_BREAKER_MIN_REQUESTS":      strconv.Itoa(minRequests),
		"COSMOS_BREAKER_SUCCESS_THRESHOLD": strconv.Itoa(successThreshold),
		"COSMOS_BREAKER_DELAY":             breakerDelay.String(),
		"COSMOS_BREAKER_FAILURE_RATE":      "0.5",
		"COSMOS_BREAKER_WINDOW":            "10s",
	}})
	ctx := context.Background()
	const outage = 30 * time.Second
	orders := NewOrders("outage", 100)
	before := s.Proxy.Stats()
	s.Proxy.Outage(outage, faultproxy.OutageReset)
	begin := time.Now()
	if err := SendOver(ctx, s, orders, outage*2/3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(begin.Add(outage)))
	during := s.Proxy.Stats()
	tally := settleOrders(t, s, orders, outage+2*time.Minute)
	drained := time.Since(begin.Add(outage))

	attempts := during.DuringOutage
	// What the policies allow while the store is down: the calls it takes to open the
	// breaker, plus those already in flight when it opens, each tried 1+sdkRetries times
	// by the client; then, per breaker delay, one half-open window of successThreshold
	// trial calls. The listener keeps at most batchSize+newBatchThreshold invocations in
	// flight.
	batch, threshold := hostQueueLimits(t, s.Root)
	perCall := int64(1 + sdkRetries)
	windows := int64(outage/breakerDelay) + 1
	bound := int64(minRequests+batch+threshold)*perCall + windows*successThreshold*perCall
	if attempts > bound {
		t.Errorf("%d requests reached the store while it was down; the breaker should hold them to %d", attempts, bound)
	}
	opened := con.Count("msg", "circuit breaker changed state", "dependency", "cosmos-writes", "to", "open")
	if opened == 0 {
		t.Errorf("the cosmos-writes breaker never opened during a %v outage", outage)
	}
	first, rest := splitSeries(during.Series, begin.Sub(before.Since), 5*time.Second, outage)
	o := processOutcomes(con)
	shed := con.Count("function", "process", "outcome", "deferred", "reason", "circuit-open")
	t.Logf("store down %v: %s; %d requests reached the store while it was down (bound %d): %d writes in the first 5 s, %d in the remaining %v; breaker opened %d times; %d deferrals (%d shed by the open breaker), %d written; drained %v after the store came back",
		outage, tally, attempts, bound, first, rest, outage-5*time.Second, opened, o.deferred, shed, o.written, drained.Round(time.Second))
}

// splitSeries counts the faulted writes in the first span of a window that starts at
// offset, and in the rest of it.
func splitSeries(series []faultproxy.Bucket, offset, span, window time.Duration) (first, rest int64) {
	for _, b := range series {
		switch at := b.Offset - offset; {
		case at < 0 || at >= window:
		case at < span:
			first += b.WritesFaulted
		default:
			rest += b.WritesFaulted
		}
	}
	return first, rest
}

// hostQueueLimits reads batchSize and newBatchThreshold from host.json.
func hostQueueLimits(t *testing.T, root string) (batch, threshold int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Extensions struct {
			Queues struct {
				BatchSize         int `json:"batchSize"`
				NewBatchThreshold int `json:"newBatchThreshold"`
			} `json:"queues"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Extensions.Queues.BatchSize, h.Extensions.Queues.NewBatchThreshold
}
