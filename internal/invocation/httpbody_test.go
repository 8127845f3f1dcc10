package invocation

import (
	"net/http"
	"strings"
	"testing"
)

func httpRequestWith(contentType string, body *string) *HTTPRequest {
	h := map[string][]string{}
	if contentType != "" {
		h["content-type"] = []string{contentType}
	}
	return &HTTPRequest{Method: "POST", Headers: h, Body: body}
}

func TestJSONBodyAcceptsJSON(t *testing.T) {
	body := `{"orderId":"o-1"}`
	for _, ct := range []string{
		"application/json",
		"application/json; charset=utf-8",
		"Application/JSON",
		"application/merge-patch+json",
		"application/problem+json; charset=UTF-8",
	} {
		got, p := JSONBody(httpRequestWith(ct, &body), 1024)
		if p != nil {
			t.Errorf("Content-Type %q: problem %+v", ct, p)
			continue
		}
		if string(got) != body {
			t.Errorf("Content-Type %q: body = %q, want %q", ct, got, body)
		}
	}
}

func TestJSONBodyProblems(t *testing.T) {
	body := `{"orderId":"o-1"}`
	empty := ""
	for _, c := range []struct {
		name       string
		ct         string
		body       *string
		max        int64
		wantStatus int
		wantField  string
	}{
		{"no content type", "", &body, 1024, http.StatusUnsupportedMediaType, "Content-Type"},
		{"text", "text/plain", &body, 1024, http.StatusUnsupportedMediaType, "Content-Type"},
		{"octet stream", "application/octet-stream", &body, 1024, http.StatusUnsupportedMediaType, "Content-Type"},
		{"json suffix only in parameter", "text/plain; x=+json", &body, 1024, http.StatusUnsupportedMediaType, "Content-Type"},
		{"malformed", "application/json; =", &body, 1024, http.StatusUnsupportedMediaType, "Content-Type"},
		{"no body", "application/json", nil, 1024, http.StatusBadRequest, ""},
		{"empty body", "application/json", &empty, 1024, http.StatusBadRequest, ""},
		{"one byte over", "application/json", &body, int64(len(body)) - 1, http.StatusRequestEntityTooLarge, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, p := JSONBody(httpRequestWith(c.ct, c.body), c.max)
			if p == nil {
				t.Fatalf("accepted %q", got)
			}
			if got != nil {
				t.Errorf("returned body %q alongside a problem", got)
			}
			if p.Status != c.wantStatus || p.Field != c.wantField {
				t.Errorf("problem = %+v, want status %d field %q", p, c.wantStatus, c.wantField)
			}
			if p.Detail == "" {
				t.Error("problem has no detail")
			}
		})
	}
}

func TestJSONBodyLimitIsInclusive(t *testing.T) {
	body := `{"a":1}`
	if _, p := JSONBody(httpRequestWith("application/json", &body), int64(len(body))); p != nil {
		t.Errorf("a body of exactly the limit was refused: %+v", p)
	}
}

func TestJSONBodyQuotesLongContentTypeBriefly(t *testing.T) {
	body := `{}`
	ct := "text/" + strings.Repeat("x", 500)
	_, p := JSONBody(httpRequestWith(ct, &body), 1024)
	if p == nil || p.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("problem = %+v", p)
	}
	if strings.Contains(p.Detail, ct) || len(p.Detail) > 200 {
		t.Errorf("detail quotes the whole %d-byte header: %d bytes", len(ct), len(p.Detail))
	}
}

// TestJSONBodyRefusesOtherCharsetsAndBareSuffix: JSON is UTF-8, and "+json" alone is not
// a media type.
func TestJSONBodyRefusesOtherCharsetsAndBareSuffix(t *testing.T) {
	body := `{"id":"a"}`
	for ct, want := range map[string]int{
		"application/json; charset=latin1": 415,
		"application/json; charset=UTF-8":  0,
		"application/json; charset=utf8":   0,
		"+json":                            415,
		"application/merge-patch+json":     0,
		"application/json-patch+json; q=1": 0,
	} {
		req := &HTTPRequest{Headers: map[string][]string{"Content-Type": {ct}}, Body: &body}
		_, p := JSONBody(req, 1<<20)
		got := 0
		if p != nil {
			got = p.Status
		}
		if got != want {
			t.Errorf("Content-Type %q: problem status %d, want %d", ct, got, want)
		}
	}
}
