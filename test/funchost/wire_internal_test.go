package funchost

// Edge cases of the .NET formatting the imitation reproduces, which the wire tests in
// funchost_test.go cannot pick: the clock decides sys.UtcNow, and one message cannot
// carry every number and date shape.

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestSysUtcNowFormat(t *testing.T) {
	cases := []struct {
		nsec int
		want string
	}{
		// The fraction in the captured HTTP payload, 15:14:15.128919Z, had a trailing
		// zero dropped.
		{128919000, "2024-05-14T15:14:15.128919Z"},
		{408053900, "2024-05-14T15:14:15.4080539Z"},
		{500000000, "2024-05-14T15:14:15.5Z"},
		{0, "2024-05-14T15:14:15Z"},
		// .NET ticks are 100 ns; anything finer is cut off, not rounded.
		{123456789, "2024-05-14T15:14:15.1234567Z"},
	}
	for _, c := range cases {
		now := time.Date(2024, 5, 14, 15, 14, 15, c.nsec, time.UTC)
		if got := sysMetadata("f", now)["UtcNow"]; got != c.want {
			t.Errorf("UtcNow for %d ns = %q, want %q", c.nsec, got, c.want)
		}
	}
}

func TestWireValueEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"a<b & c>d":   `"a<b & c>d"`,
		"quote \" \\": `"quote \" \\"`,
		"line\nnext":  `"line\nnext"`,
		"ünïcode":     `"ünïcode"`,
	} {
		if got := wireValue(in); got != want {
			t.Errorf("wireValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDotNetDateString(t *testing.T) {
	for in, want := range map[string]string{
		"2024-04-06T15:30:00Z":              "04/06/2024 15:30:00",
		"2024-04-06T15:30:00.1234567Z":      "04/06/2024 15:30:00",
		"2024-04-06T15:30:00":               "04/06/2024 15:30:00",
		"2024-04-06T15:30:00+02:00":         "04/06/2024 13:30:00",
		"2024-04-06T23:30:00-0130":          "04/07/2024 01:00:00",
		"2024-04-06":                        "2024-04-06",
		"2024-04-06 15:30:00":               "2024-04-06 15:30:00",
		"2024-02-30T00:00:00Z":              "2024-02-30T00:00:00Z",
		"2024-04-06T15:30:00.12345678Z":     "2024-04-06T15:30:00.12345678Z",
		"not a date":                        "not a date",
		"0999-01-02T03:04:05Z":              "01/02/0999 03:04:05",
		"2024-04-06T15:30:00Z trailing":     "2024-04-06T15:30:00Z trailing",
		"12024-04-06T15:30:00Z":             "12024-04-06T15:30:00Z",
		"2024-12-31T23:59:59.9999999+00:00": "12/31/2024 23:59:59",
	} {
		if got := dotNetDateString(in); got != want {
			t.Errorf("dotNetDateString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDotNetNumberString(t *testing.T) {
	for in, want := range map[string]string{
		"5":                    "5",
		"-12":                  "-12",
		"-0":                   "0",
		"12345678901234567890": "12345678901234567890",
		"1.5":                  "1.5",
		"1.50":                 "1.5",
		"2.0":                  "2",
		"1e3":                  "1000",
		"0.0001":               "0.0001",
		"0.00001":              "1E-05",
		"123456789012345.0":    "123456789012345",
		"1e15":                 "1E+15",
		"1.5e20":               "1.5E+20",
	} {
		if got := dotNetNumberString(json.Number(in)); got != want {
			t.Errorf("dotNetNumberString(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestApplyJSONBindingDataSkipsNonObjects(t *testing.T) {
	for _, payload := range []string{`[1,2]`, `"text"`, `{broken`, ``, `{"a":1} trailing`} {
		meta := map[string]any{"Id": `"x"`}
		applyJSONBindingData(meta, payload, true)
		if len(meta) != 1 || meta["Id"] != `"x"` {
			t.Errorf("payload %q changed the binding data: %v", payload, meta)
		}
	}
	meta := map[string]any{"Id": `"x"`}
	applyJSONBindingData(meta, `{"id":"y"}`, false)
	if len(meta) != 1 || meta["Id"] != `"y"` {
		t.Errorf("a property differing in case did not replace the entry: %v", meta)
	}
}

func TestSplitCommandLine(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{` a b`, []string{"a", "b"}},
		{"  \ta\t\tb  ", []string{"a", "b"}},
		{` "two words" x`, []string{"two words", "x"}},
		{` a"b c"d`, []string{"ab cd"}},
		{` "say ""hi""" z`, []string{`say "hi"`, "z"}},
		{` back\slash`, []string{`back\slash`}},
		{` \"quote`, []string{`"quote`}},
		{` \\"quoted arg"`, []string{`\quoted arg`}},
		{` trailing\\`, []string{`trailing\\`}},
		{` ""`, []string{""}},
		{``, nil},
	}
	for _, c := range cases {
		if got := splitCommandLine(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitCommandLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
