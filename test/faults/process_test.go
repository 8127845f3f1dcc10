package faults

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/stack"
)

// settlePipeline settles both halves of the pipeline: every order stored once (or
// poisoned with its reason) and every stored order fulfilled once (or its notification
// poisoned with its reason).
func settlePipeline(t *testing.T, s *stack.Stack, orders []Order, limit time.Duration) (stored, fulfilled Tally) {
	t.Helper()
	stored = settleOrders(t, s, orders, limit)
	fulfilled = FulfilmentLedger(s).Settle(t, OrderIDs(orders), limit)
	Check(t, "fulfilments", fulfilled)
	return stored, fulfilled
}

// redelivered counts the process invocations that ran on a second or later delivery.
func redelivered(con *Console) int {
	n := 0
	for _, e := range con.Entries("function", "process") {
		if c, err := strconv.Atoi(e.Str("dequeue_count")); err == nil && c > 1 && e.Str("outcome") != "" {
			n++
		}
	}
	return n
}

// TestHandlerKilledMidBatch kills the handler with SIGKILL while a batch of writes is in
// flight. The host restarts it; the invocations that were cut off fail, their messages
// come back after host.json's visibilityTimeout, and each order is stored and fulfilled
// once.
func TestHandlerKilledMidBatch(t *testing.T) {
	s, con := startCase(t, stack.Options{FaultProxy: true})
	ctx := context.Background()
	h := s.Hosts[0]
	orders := NewOrders("kill", 60)
	// Writes take 2 s for a while, so that a batch is surely in flight when the handler
	// dies.
	s.Proxy.Script(faultproxy.Rule{Match: faultproxy.Writes, For: 20 * time.Second, Latency: 2 * time.Second})
	if err := Send(ctx, s, orders); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "writes in flight", 30*time.Second, func() bool { return s.Proxy.Stats().WriteRequests >= 6 })
	victim := h.HandlerPID()
	before := h.Stats()
	killedAt := time.Now()
	h.KillHandler()
	WaitFor(t, "the host to restart the handler", time.Minute, func() bool {
		pid := h.HandlerPID()
		return pid != 0 && pid != victim
	})
	restarted := time.Since(killedAt)

	stored, fulfilled := settlePipeline(t, s, orders, 3*time.Minute)
	after := h.Stats()
	cut := after.Failures - before.Failures
	if cut == 0 {
		t.Errorf("no invocation failed when the handler was killed; nothing was in flight")
	}
	if after.Restarts != 1 {
		t.Errorf("the host restarted the handler %d times, want 1", after.Restarts)
	}
	o := processOutcomes(con)
	t.Logf("SIGKILL mid-batch: orders %s; fulfilments %s; %d invocations cut off, handler back after %v, %d invocations on a redelivered message, %d written, %d found already stored",
		stored, fulfilled, cut, restarted.Round(time.Millisecond), redelivered(con), o.written, o.duplicate)
}

// TestHandlerTerminatedMidBatch sends SIGTERM to the handler while writes are in flight,
// some of them held back longer than the handler's shutdown grace. Every invocation must
// finish or end cleanly (its message deferred) before the handler exits on its own within
// the grace, and nothing may be half-written: each order stored and fulfilled once.
func TestHandlerTerminatedMidBatch(t *testing.T) {
	// One try of up to 30 s, so that a held-back write is still waiting when the grace
	// runs out, rather than ended by the client's own per-try timeout.
	s, con := startCase(t, stack.Options{FaultProxy: true, Settings: map[string]string{
		"COSMOS_SDK_MAX_RETRIES": "0", "COSMOS_WRITE_MAX_RETRIES": "0", "COSMOS_SDK_TRY_TIMEOUT": "30s",
	}})
	ctx := context.Background()
	h := s.Hosts[0]
	slowOrders, fastOrders := NewOrders("term-slow", 4), NewOrders("term", 36)
	orders := append(slowOrders, fastOrders...)
	var slowSeen atomic.Int64
	slow := func(r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte(`"id":"term-slow-`)) {
			slowSeen.Add(1)
			return true
		}
		return false
	}
	s.Proxy.Script(
		faultproxy.Rule{Match: faultproxy.Writes, If: slow, For: 40 * time.Second, Latency: 25 * time.Second},
		faultproxy.Rule{Match: faultproxy.Writes, For: 40 * time.Second, Latency: 2 * time.Second},
	)
	// The slow ones first, so the first batch surely holds them; there are fewer of
	// them than newBatchThreshold, so the host keeps fetching fast ones beside them.
	for _, batch := range [][]Order{slowOrders, fastOrders} {
		if err := Send(ctx, s, batch); err != nil {
			t.Fatal(err)
		}
	}
	WaitFor(t, "slow and fast writes in flight", 30*time.Second, func() bool {
		return slowSeen.Load() > 0 && s.Proxy.Stats().WriteRequests-slowSeen.Load() >= 4
	})
	victim := h.HandlerPID()
	before := h.Stats()
	if err := syscall.Kill(victim, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "the handler to stop", time.Minute, func() bool { return con.Count("msg", "handler stopped") > 0 })
	WaitFor(t, "the host to restart the handler", time.Minute, func() bool {
		pid := h.HandlerPID()
		return pid != 0 && pid != victim
	})

	stored, fulfilled := settlePipeline(t, s, orders, 3*time.Minute)
	begin := con.Entries("msg", "shutting down: finishing in-flight invocations")
	end := con.Entries("msg", "handler stopped")
	if len(begin) != 1 || len(end) != 1 {
		t.Fatalf("%d shutdown and %d stop lines, want one each", len(begin), len(end))
	}
	grace, err := time.ParseDuration(begin[0].Str("grace"))
	if err != nil {
		t.Fatalf("shutdown line has no grace: %v", begin[0])
	}
	took := end[0].Time().Sub(begin[0].Time())
	if took > grace {
		t.Errorf("the handler took %v to stop after SIGTERM, past its %v grace", took, grace)
	}
	// What the dying handler did with its invocations, from its own log.
	var finished, deferred, failed int
	for _, e := range con.Entries() {
		at := e.Time()
		if at.Before(begin[0].Time()) || at.After(end[0].Time()) {
			continue
		}
		switch {
		case e.Str("outcome") == "written" || e.Str("outcome") == "duplicate" || e.Str("outcome") == "sent":
			finished++
		case e.Str("outcome") == "deferred":
			deferred++
		case e.Str("msg") == "invocation failed":
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d invocations failed during shutdown; each must finish or defer its message", failed)
	}
	if deferred == 0 || finished == 0 {
		t.Errorf("%d invocations finished and %d were cut short during the shutdown; the case needs both", finished, deferred)
	}
	refused := h.Stats().Failures - before.Failures
	t.Logf("SIGTERM mid-batch: orders %s; fulfilments %s; during the %v shutdown (grace %v) %d invocations finished, %d ended by deferring their message, %d failed; %d invocations the host could not deliver while the handler stopped; %d invocations on a redelivered message",
		stored, fulfilled, took.Round(time.Millisecond), grace, finished, deferred, failed, refused, redelivered(con))
}
