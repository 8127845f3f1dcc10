package invocation

import (
	"encoding/json"
	"testing"
)

// FuzzJSONString checks the fast string decoder against encoding/json: for any input,
// both accept with the same result or both refuse.
func FuzzJSONString(f *testing.F) {
	for _, seed := range []string{
		`"plain"`, `""`, `"a\"b"`, `"\\\\"`, `"\/"`, `"tab\there"`, `"\u00e9t\u00e9"`, `"é"`,
		`"{\"id\":\"o-1\",\"n\":[1,2]}"`, `"bare"quote"`, `"ctrl` + "\x01" + `"`, `"bad\x"`, `"trail\"`,
		"\"\xff\"", `"\ud83d\ude00"`, `x`, `"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, lit []byte) {
		var want string
		wantErr := json.Unmarshal(lit, &want)
		got, err := jsonString(lit)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("jsonString(%q) error %v, encoding/json error %v", lit, err, wantErr)
		}
		if err == nil && got != want {
			t.Fatalf("jsonString(%q) = %q, encoding/json gives %q", lit, got, want)
		}
	})
}

func TestJSONStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "abc", `{"id":"o-1","note":"a \"quoted\" word\nand a line"}`, "é ☃ 😀", "\x00\x1f", `back\slash/`} {
		lit, _ := json.Marshal(s)
		got, err := jsonString(lit)
		if err != nil || got != s {
			t.Errorf("jsonString(%s) = %q, %v; want %q", lit, got, err, s)
		}
	}
}
