package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/fulfilmentfake"
	"github.com/sluice-dev/sluice/test/stack"
)

// notification is what process hands to notify.
func notification(id string) string {
	return fmt.Sprintf(`{"orderId":%q,"customerId":"c-ful"}`, id)
}

// TestFulfilmentRetryAfterDateIsHonoured answers 429 with Retry-After as an HTTP date
// three seconds ahead: the next call must not come before that date.
func TestFulfilmentRetryAfterDateIsHonoured(t *testing.T) {
	s := stack.StartT(t, stack.Options{})
	// HTTP dates have whole seconds; round up so "3 s ahead" is never less than 3 s.
	until := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	s.Fulfilment.Script(fulfilmentfake.Reply{Status: http.StatusTooManyRequests,
		Headers: map[string]string{"Retry-After": until.UTC().Format(http.TimeFormat)}})
	if err := s.Enqueue(context.Background(), "notifications", notification("date-1")); err != nil {
		t.Fatal(err)
	}
	calls := eventually(t, 30*time.Second, func() ([]fulfilmentfake.Call, bool) {
		c := s.Fulfilment.Calls()
		return c, len(c) >= 2
	})
	if calls[1].At.Before(until) {
		t.Errorf("second call at %v, before the Retry-After date %v", calls[1].At.Format(time.StampMilli), until.Format(time.StampMilli))
	}
	if calls[0].IdempotencyKey == "" || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
		t.Errorf("idempotency keys %q and %q: want the same non-empty key on every attempt", calls[0].IdempotencyKey, calls[1].IdempotencyKey)
	}
	if f := s.Fulfilment.Fulfilled(); f["date-1"] != 1 {
		t.Errorf("date-1 fulfilled %d times, want 1", f["date-1"])
	}
	t.Logf("Retry-After date %v ahead of the first call: second call %v after the first",
		until.Sub(calls[0].At).Round(time.Millisecond), calls[1].At.Sub(calls[0].At).Round(time.Millisecond))
}

// TestFulfilmentLongRetryAfterDefers answers Retry-After: 3600. Waiting an hour does not
// fit in an invocation, so the invocation ends promptly and the message returns later.
func TestFulfilmentLongRetryAfterDefers(t *testing.T) {
	s := stack.StartT(t, stack.Options{})
	s.Fulfilment.Script(fulfilmentfake.Reply{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": "3600"}})
	ctx := context.Background()
	start := time.Now()
	if err := s.Enqueue(ctx, "notifications", notification("hour-1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() (string, bool) {
		st := s.Hosts[0].Stats()
		n, _ := s.ApproximateCount(ctx, "notifications")
		visible, _ := s.Peek(ctx, "notifications")
		return fmt.Sprintf("%+v, %d queued, %d visible", st, n, len(visible)),
			len(s.Fulfilment.Calls()) == 1 && n == 1 && len(visible) == 0 && st.Invocations >= 1 && idle(s, "fulfilment-api")
	})
	if st := s.Hosts[0].Stats(); st.Failures != 0 {
		t.Errorf("%d failed invocations; a long Retry-After must defer, not fail", st.Failures)
	}
	if n, _ := s.ApproximateCount(ctx, "notifications-poison"); n != 0 {
		t.Errorf("notifications-poison holds %d messages", n)
	}
	t.Logf("Retry-After 3600: one call, message deferred, settled within %v", time.Since(start).Round(time.Millisecond))
}

// idle reports whether the named dependency has nothing in flight on any host.
func idle(s *stack.Stack, dep string) bool {
	for _, h := range s.Hosts {
		d, ok := health(h.URL())[dep]
		if !ok || d.Limiter.InFlight != 0 {
			return false
		}
	}
	return true
}

// TestFulfilmentUnusableRetryAfterBacksOff sends hints that cannot be used as a wait: a
// past date, a fraction, a negative number and junk. Each must fall back to backoff and
// produce exactly one warning naming the header, and the order must still be fulfilled.
func TestFulfilmentUnusableRetryAfterBacksOff(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"past-date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)},
		{"fraction", "1.5"},
		{"negative", "-5"},
		{"junk", "soon-ish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var console syncWriter
			console.b = &strings.Builder{}
			s := stack.StartT(t, stack.Options{Console: &console})
			s.Fulfilment.Script(
				fulfilmentfake.Reply{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": tc.value}},
				fulfilmentfake.Reply{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": tc.value}},
			)
			id := "bad-hint-" + tc.name
			if err := s.Enqueue(context.Background(), "notifications", notification(id)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() (map[string]int, bool) {
				f := s.Fulfilment.Fulfilled()
				return f, f[id] == 1
			})
			var warnings []string
			for _, line := range strings.Split(console.String(), "\n") {
				if strings.Contains(line, "unusable wait hint") {
					warnings = append(warnings, line)
				}
			}
			if len(warnings) != 1 {
				t.Fatalf("%d warnings about the hint, want exactly 1:\n%s", len(warnings), strings.Join(warnings, "\n"))
			}
			if !strings.Contains(warnings[0], "Retry-After") {
				t.Errorf("the warning does not name the header: %s", warnings[0])
			}
			if calls := s.Fulfilment.Calls(); len(calls) != 3 {
				t.Errorf("%d calls, want 3 (two throttled, then accepted)", len(calls))
			}
		})
	}
}
