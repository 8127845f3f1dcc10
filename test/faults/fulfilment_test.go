package faults

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/fulfilmentfake"
	"github.com/sluice-dev/sluice/test/stack"
)

// misbehaviourWindow is how long the fulfilment API misbehaves: one minute in CI, three
// with SLUICE_FAULTS_FULL set.
func misbehaviourWindow() time.Duration {
	if os.Getenv("SLUICE_FAULTS_FULL") != "" {
		return 3 * time.Minute
	}
	return time.Minute
}

// TestFulfilmentAPIMisbehaves makes the third-party API unusable for a while in three
// ways: down (every connection dropped), slow (answers after the attempt timeout) and
// throttling (429 with Retry-After). Orders keep arriving; each must be stored once and
// fulfilled once when the API recovers, and none poisoned.
func TestFulfilmentAPIMisbehaves(t *testing.T) {
	if testing.Short() {
		t.Skip("the API misbehaves for a minute or more")
	}
	t.Parallel()
	window := misbehaviourWindow()
	for _, tc := range []struct {
		name  string
		reply fulfilmentfake.Reply
	}{
		{"down", fulfilmentfake.Reply{Drop: true}},
		{"slow", fulfilmentfake.Reply{Status: http.StatusCreated, Delay: 12 * time.Second}},
		{"throttling", fulfilmentfake.Reply{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": "5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, con := startCase(t, stack.Options{Settings: map[string]string{"FULFILMENT_ATTEMPT_TIMEOUT": "10s"}})
			ctx := context.Background()
			until := time.Now().Add(window)
			s.Fulfilment.SetDefault(func() fulfilmentfake.Reply {
				if time.Now().Before(until) {
					return tc.reply
				}
				return fulfilmentfake.Reply{Status: http.StatusCreated}
			})
			orders := NewOrders("api-"+tc.name, 40)
			if err := SendOver(ctx, s, orders, window/2); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(until))
			stored, fulfilled := settlePipeline(t, s, orders, 3*time.Minute)
			drained := time.Since(until)

			var during, repeats int
			for _, c := range s.Fulfilment.Calls() {
				if c.At.Before(until) {
					during++
				}
				if c.Status == http.StatusConflict {
					repeats++
				}
			}
			if during == 0 {
				t.Errorf("no call reached the API while it misbehaved; the case tested nothing")
			}
			opened := con.Count("msg", "circuit breaker changed state", "dependency", "fulfilment-api", "to", "open")
			deferred := con.Count("function", "notify", "outcome", "deferred")
			t.Logf("fulfilment API %s for %v: orders %s; fulfilments %s; %d calls while it misbehaved, %d calls in all, %d repeats answered 409, breaker opened %d times, %d notify deferrals; drained %v after it recovered",
				tc.name, window, stored, fulfilled, during, len(s.Fulfilment.Calls()), repeats, opened, deferred, drained.Round(time.Second))
		})
	}
}
