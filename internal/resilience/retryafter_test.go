package resilience

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var hintNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseHintMilliseconds(t *testing.T) {
	for _, name := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		cases := []struct {
			value string
			want  time.Duration
		}{
			{"250", 250 * time.Millisecond},
			{"0", 0}, // retry now
			{"12.5", 12500 * time.Microsecond},
			{"  40 ", 40 * time.Millisecond},
			{"1e3", time.Second},
			{"604800000", 7 * 24 * time.Hour}, // the largest accepted
		}
		for _, tc := range cases {
			hint, ok, warning := ParseHint(header(name, tc.value), hintNow)
			if !ok || warning != "" {
				t.Errorf("%s=%q: ok=%v warning=%q, want a hint", name, tc.value, ok, warning)
				continue
			}
			if hint.Delay != tc.want {
				t.Errorf("%s=%q: Delay = %v, want %v", name, tc.value, hint.Delay, tc.want)
			}
			if hint.Header != name {
				t.Errorf("%s=%q: Header = %q, want %q", name, tc.value, hint.Header, name)
			}
		}
	}
}

func TestParseHintMillisecondsUnusable(t *testing.T) {
	for _, name := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		for _, v := range []string{"-1", "-0.5", "abc", "10ms", "NaN", "nan", "Inf", "+Inf", "-Inf", "604800001", "1e300", "0x", "1,5"} {
			hint, ok, warning := ParseHint(header(name, v), hintNow)
			if ok {
				t.Errorf("%s=%q: got hint %+v, want none", name, v, hint)
			}
			if hint.Delay != 0 || hint.Header != "" {
				t.Errorf("%s=%q: returned %+v alongside ok=false", name, v, hint)
			}
			if !strings.Contains(warning, name) || !strings.Contains(warning, v) {
				t.Errorf("%s=%q: warning %q should name the header and quote the value", name, v, warning)
			}
		}
	}
}

func TestParseHintPrecedence(t *testing.T) {
	h := header("x-ms-retry-after-ms", "10", "retry-after-ms", "20", "Retry-After", "30")
	if hint, ok, _ := ParseHint(h, hintNow); !ok || hint.Delay != 10*time.Millisecond || hint.Header != "x-ms-retry-after-ms" {
		t.Errorf("all three: %+v ok=%v, want 10ms from x-ms-retry-after-ms", hint, ok)
	}
	h.Del("x-ms-retry-after-ms")
	if hint, ok, _ := ParseHint(h, hintNow); !ok || hint.Delay != 20*time.Millisecond || hint.Header != "retry-after-ms" {
		t.Errorf("retry-after-ms and Retry-After: %+v ok=%v, want 20ms from retry-after-ms", hint, ok)
	}
	// An empty or blank header counts as absent.
	h.Set("x-ms-retry-after-ms", "   ")
	if hint, ok, _ := ParseHint(h, hintNow); !ok || hint.Header != "retry-after-ms" {
		t.Errorf("blank x-ms-retry-after-ms: %+v ok=%v, want retry-after-ms", hint, ok)
	}
	// A present but unusable header is reported, not skipped for the next one: the
	// caller backs off on its own.
	h = header("x-ms-retry-after-ms", "soon", "Retry-After", "30")
	if hint, ok, warning := ParseHint(h, hintNow); ok || !strings.Contains(warning, "x-ms-retry-after-ms") {
		t.Errorf("unusable x-ms-retry-after-ms: %+v ok=%v warning=%q", hint, ok, warning)
	}
	// Header names are matched case-insensitively, as HTTP requires.
	h = http.Header{}
	h.Set("X-MS-RETRY-AFTER-MS", "7")
	if hint, ok, _ := ParseHint(h, hintNow); !ok || hint.Delay != 7*time.Millisecond {
		t.Errorf("upper-case name: %+v ok=%v", hint, ok)
	}
}

func TestParseHintNoHeader(t *testing.T) {
	for _, h := range []http.Header{nil, {}, header("Retry-After", ""), header("Retry-After", "  "), header("Content-Type", "text/plain")} {
		hint, ok, warning := ParseHint(h, hintNow)
		if ok || warning != "" || hint != (Hint{}) {
			t.Errorf("%v: %+v ok=%v warning=%q, want nothing", h, hint, ok, warning)
		}
	}
}

func TestParseHintRetryAfterSeconds(t *testing.T) {
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"0", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"604800", 7 * 24 * time.Hour},
		{"604801", 7 * 24 * time.Hour},              // capped
		{"9223372036854775807", 7 * 24 * time.Hour}, // capped, no overflow
	}
	for _, tc := range cases {
		hint, ok, warning := ParseHint(header("Retry-After", tc.value), hintNow)
		if !ok || warning != "" || hint.Delay != tc.want || hint.Header != "Retry-After" {
			t.Errorf("Retry-After=%q: %+v ok=%v warning=%q, want %v", tc.value, hint, ok, warning, tc.want)
		}
	}
}

func TestParseHintRetryAfterUnusable(t *testing.T) {
	cases := map[string]string{
		"-1":                            "negative",
		"-3600":                         "negative",
		"1.5":                           "neither",
		"soon":                          "neither",
		"5s":                            "neither",
		"0x10":                          "neither",
		"Mon, 32 Jan 2026 00:00:00 GMT": "neither",
		"99999999999999999999":          "neither",
	}
	for v, want := range cases {
		hint, ok, warning := ParseHint(header("Retry-After", v), hintNow)
		if ok || hint != (Hint{}) {
			t.Errorf("Retry-After=%q: %+v ok=%v, want none", v, hint, ok)
		}
		if !strings.Contains(warning, "Retry-After") || !strings.Contains(warning, want) {
			t.Errorf("Retry-After=%q: warning %q, want it to name the header and say %q", v, warning, want)
		}
	}
}

func TestParseHintRetryAfterDate(t *testing.T) {
	future := hintNow.Add(10 * time.Second)
	for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
		v := future.Format(layout)
		if layout == time.RFC850 {
			v = strings.Replace(v, "UTC", "GMT", 1)
		}
		hint, ok, warning := ParseHint(header("Retry-After", v), hintNow)
		if !ok || warning != "" || hint.Header != "Retry-After" {
			t.Errorf("Retry-After=%q: %+v ok=%v warning=%q, want a hint", v, hint, ok, warning)
			continue
		}
		// Never early, and at most the one-second resolution late.
		if hint.Delay < 10*time.Second || hint.Delay > 11*time.Second {
			t.Errorf("Retry-After=%q: Delay = %v, want 10s to 11s", v, hint.Delay)
		}
	}

	// now between seconds: the hint still reaches the date.
	now := hintNow.Add(300 * time.Millisecond)
	hint, ok, _ := ParseHint(header("Retry-After", future.Format(http.TimeFormat)), now)
	if !ok || hint.Delay < future.Sub(now) || hint.Delay > future.Sub(now)+time.Second {
		t.Errorf("sub-second now: %+v ok=%v, want %v to %v", hint, ok, future.Sub(now), future.Sub(now)+time.Second)
	}

	// A date equal to now asks for a short wait, not none and not a warning.
	hint, ok, warning := ParseHint(header("Retry-After", hintNow.Format(http.TimeFormat)), hintNow)
	if !ok || warning != "" || hint.Delay < 0 || hint.Delay > time.Second {
		t.Errorf("date == now: %+v ok=%v warning=%q", hint, ok, warning)
	}

	// The same header read later asks for less.
	v := future.Format(http.TimeFormat)
	early, _, _ := ParseHint(header("Retry-After", v), hintNow)
	late, _, _ := ParseHint(header("Retry-After", v), hintNow.Add(5*time.Second))
	if late.Delay >= early.Delay {
		t.Errorf("read 5s later: %v, earlier %v; want less", late.Delay, early.Delay)
	}
}

func TestParseHintRetryAfterDatePast(t *testing.T) {
	for _, d := range []time.Duration{time.Second, time.Hour, 24 * 365 * time.Hour} {
		v := hintNow.Add(-d).Format(http.TimeFormat)
		hint, ok, warning := ParseHint(header("Retry-After", v), hintNow)
		if ok || hint != (Hint{}) || !strings.Contains(warning, "past") || !strings.Contains(warning, v) {
			t.Errorf("Retry-After=%q (%v ago): %+v ok=%v warning=%q", v, d, hint, ok, warning)
		}
	}
}

func TestParseHintRetryAfterDateFarFuture(t *testing.T) {
	for _, v := range []string{
		hintNow.Add(8 * 24 * time.Hour).Format(http.TimeFormat),
		"Sat, 01 Jan 2200 00:00:00 GMT",
		"Fri, 31 Dec 9999 23:59:59 GMT", // further than a time.Duration reaches
	} {
		hint, ok, warning := ParseHint(header("Retry-After", v), hintNow)
		if !ok || warning != "" {
			t.Errorf("Retry-After=%q: ok=%v warning=%q, want a capped hint", v, ok, warning)
			continue
		}
		if hint.Delay != 7*24*time.Hour {
			t.Errorf("Retry-After=%q: Delay = %v, want the 7-day cap", v, hint.Delay)
		}
	}
}

func FuzzParseHint(f *testing.F) {
	f.Add("250", "", "", int64(0))
	f.Add("", "12.5", "", int64(0))
	f.Add("", "", "120", int64(0))
	f.Add("", "", "Sat, 14 Mar 2026 15:09:36 GMT", int64(0))
	f.Add("", "", "Fri, 31 Dec 9999 23:59:59 GMT", int64(-1))
	f.Add("NaN", "", "", int64(0))
	f.Add("", "-Inf", "", int64(0))
	f.Add("", "", "-5", int64(7))
	f.Add("", "", "Monday, 01-Jan-01 00:00:00 GMT", int64(1<<40))
	f.Add("0x1p-2", "", "Sun Mar 15 15:09:26 2026", int64(-1<<40))
	f.Fuzz(func(t *testing.T, xms, ms, ra string, nowOffset int64) {
		h := http.Header{}
		if xms != "" {
			h["X-Ms-Retry-After-Ms"] = []string{xms}
		}
		if ms != "" {
			h["Retry-After-Ms"] = []string{ms}
		}
		if ra != "" {
			h["Retry-After"] = []string{ra}
		}
		now := hintNow.Add(time.Duration(nowOffset))
		hint, ok, warning := ParseHint(h, now)
		if hint.Delay < 0 {
			t.Fatalf("negative delay %v for %v", hint.Delay, h)
		}
		if hint.Delay > 7*24*time.Hour {
			t.Fatalf("delay %v beyond the 7-day cap for %v", hint.Delay, h)
		}
		if ok {
			if warning != "" {
				t.Fatalf("ok with warning %q", warning)
			}
			if strings.TrimSpace(h.Get(hint.Header)) == "" {
				t.Fatalf("hint names header %q, which is absent from %v", hint.Header, h)
			}
			return
		}
		if hint != (Hint{}) {
			t.Fatalf("no hint, yet returned %+v", hint)
		}
		if warning != "" && !strings.Contains(strings.ToLower(warning), "retry-after") {
			t.Fatalf("warning %q names no header", warning)
		}
		blank := strings.TrimSpace(xms) == "" && strings.TrimSpace(ms) == "" && strings.TrimSpace(ra) == ""
		if blank != (warning == "") {
			t.Fatalf("headers %v: warning %q", h, warning)
		}
	})
}
