package resilience

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxHint is the longest wait a hint may ask for.
const maxHint = 7 * 24 * time.Hour

// Hint is a server's request to wait before trying again.
type Hint struct {
	Delay time.Duration
	// Header is the header the delay came from, for logs.
	Header string
}

// ParseHint reads the wait a response asks for, in the order the servers define it:
// x-ms-retry-after-ms and retry-after-ms (milliseconds, integer or decimal; 0 means retry
// now), then Retry-After as whole seconds or as an HTTP date. ok is false when no header
// is present. A header that is present but unusable (a date in the past, a fraction, a
// negative number, junk) gives ok == false and a warning naming the header, so the caller
// falls back to its own backoff and says why once.
func ParseHint(h http.Header, now time.Time) (hint Hint, ok bool, warning string) {
	for _, name := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			continue
		}
		ms, err := strconv.ParseFloat(v, 64)
		// Written so that NaN, which compares false with everything, is refused too.
		if err != nil || !(ms >= 0 && ms <= float64(maxHint/time.Millisecond)) {
			return Hint{}, false, fmt.Sprintf("ignoring header %s=%q: want a non-negative number of milliseconds", name, v)
		}
		return Hint{Delay: time.Duration(ms * float64(time.Millisecond)), Header: name}, true, ""
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return Hint{}, false, ""
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return Hint{}, false, fmt.Sprintf("ignoring header Retry-After=%q: a negative number of seconds", v)
		}
		if secs > 7*24*3600 {
			secs = 7 * 24 * 3600
		}
		return Hint{Delay: time.Duration(secs) * time.Second, Header: "Retry-After"}, true, ""
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			return Hint{}, false, fmt.Sprintf("ignoring header Retry-After=%q: the date is in the past", v)
		}
		// HTTP dates have one-second resolution; round up so we never arrive early. A date
		// further away is capped like a number of seconds (and cannot overflow).
		if d >= maxHint {
			d = maxHint
		} else {
			d = d.Truncate(time.Second) + time.Second
		}
		return Hint{Delay: d, Header: "Retry-After"}, true, ""
	}
	return Hint{}, false, fmt.Sprintf("ignoring header Retry-After=%q: neither whole seconds nor an HTTP date", v)
}
