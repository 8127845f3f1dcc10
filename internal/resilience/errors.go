package resilience

import (
	"errors"
	"fmt"
	"time"
)

// Kind says what a caller should do with a failed operation.
type Kind int

const (
	// Permanent: repeating the operation cannot succeed (bad request, too large, conflict).
	// A queue message goes to the poison queue with the reason; an HTTP caller gets a 4xx.
	Permanent Kind = iota + 1
	// Transient: the dependency is throttling, slow or down. A queue message is re-enqueued
	// after RetryAfter; an HTTP caller gets 503 with Retry-After.
	Transient
	// Rejected: this instance shed the call before sending it (circuit open, bulkhead full,
	// pacer saturated). An HTTP caller gets 429 or 503 with Retry-After.
	Rejected
)

func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Error is a classified dependency failure.
type Error struct {
	Kind Kind
	// Reason is a short, stable, machine-readable cause such as "throttled",
	// "circuit-open" or "cosmos-400-1001". It ends up in logs and poison messages.
	Reason string
	// RetryAfter is how long to wait before trying again; zero when unknown.
	RetryAfter time.Duration
	// Hinted is true when RetryAfter came from the dependency itself (a zero hint then
	// means "retry now"), false when it is this side's estimate or unknown.
	Hinted bool
	// Status and SubStatus are the dependency's answer, when there was one.
	Status    int
	SubStatus int
	Err       error
}

func (e *Error) Error() string {
	msg := e.Kind.String() + ": " + e.Reason
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", e.RetryAfter.Round(time.Millisecond))
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns the classified error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns err's kind; an unclassified error counts as Transient, because
// treating an unknown failure as permanent would poison a message that might succeed.
func KindOf(err error) Kind {
	if e, ok := AsError(err); ok {
		return e.Kind
	}
	return Transient
}
