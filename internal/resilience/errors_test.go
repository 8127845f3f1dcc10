package resilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Permanent: "permanent", Transient: "transient", Rejected: "rejected", 0: "unknown", 99: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
	if Permanent == 0 || Transient == 0 || Rejected == 0 {
		t.Error("a Kind is the zero value, so an unset Kind would read as a real one")
	}
}

func TestErrorMessage(t *testing.T) {
	cause := errors.New("connection reset")
	cases := []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: Permanent, Reason: "cosmos-400-1001"}, "permanent: cosmos-400-1001"},
		{&Error{Kind: Transient, Reason: ReasonThrottled, RetryAfter: 1500 * time.Millisecond}, "transient: throttled (retry after 1.5s)"},
		{&Error{Kind: Transient, Reason: ReasonThrottled, RetryAfter: 1234567 * time.Microsecond}, "transient: throttled (retry after 1.235s)"},
		{&Error{Kind: Rejected, Reason: ReasonCircuitOpen, Err: cause}, "rejected: circuit-open: connection reset"},
		{&Error{Kind: Transient, Reason: "x", RetryAfter: time.Second, Err: cause}, "transient: x (retry after 1s): connection reset"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestErrorChain(t *testing.T) {
	cause := context.DeadlineExceeded
	e := &Error{Kind: Transient, Reason: ReasonDeadline, Err: cause}
	wrapped := fmt.Errorf("store: %w", e)
	if !errors.Is(wrapped, context.DeadlineExceeded) {
		t.Error("the cause is not reachable through Unwrap")
	}
	got, ok := AsError(wrapped)
	if !ok || got != e {
		t.Errorf("AsError(wrapped) = %v, %v; want the *Error", got, ok)
	}
	if _, ok := AsError(errors.New("plain")); ok {
		t.Error("AsError found an *Error in a plain error")
	}
	if _, ok := AsError(nil); ok {
		t.Error("AsError(nil) reported an *Error")
	}
}

func TestKindOf(t *testing.T) {
	cases := []struct {
		err  error
		want Kind
	}{
		{&Error{Kind: Permanent}, Permanent},
		{fmt.Errorf("wrapped: %w", &Error{Kind: Rejected}), Rejected},
		{&Error{Kind: Transient}, Transient},
		// Unclassified errors must not poison a message.
		{errors.New("mystery"), Transient},
		{context.Canceled, Transient},
	}
	for _, tc := range cases {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if KindOf(errors.Join(errors.New("a"), &Error{Kind: Permanent, Reason: "p"})) != Permanent {
		t.Error("KindOf does not look through joined errors")
	}
	if !strings.Contains((&Error{Kind: Permanent, Reason: "p"}).Error(), "p") {
		t.Error("Error() drops the reason")
	}
}
