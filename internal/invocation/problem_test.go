package invocation

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestProblemResponseDefaults(t *testing.T) {
	r := ProblemResponse(Problem{Status: http.StatusConflict, Detail: "order o-1 exists", Field: "id"})
	if r.StatusCode != http.StatusConflict {
		t.Errorf("StatusCode = %d", r.StatusCode)
	}
	if ct := r.Headers["Content-Type"]; ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var p Problem
	if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	want := Problem{Type: "about:blank", Title: "Conflict", Status: http.StatusConflict, Detail: "order o-1 exists", Field: "id"}
	if p != want {
		t.Errorf("problem = %+v, want %+v", p, want)
	}
	var members map[string]any
	_ = json.Unmarshal([]byte(r.Body), &members)
	if _, ok := members["instance"]; ok {
		t.Errorf("empty instance is present in %s", r.Body)
	}
}

func TestProblemResponseKeepsTypeAndTitle(t *testing.T) {
	r := ProblemResponse(Problem{Type: "urn:sluice:problem:invalid-order", Title: "Invalid order", Status: 422})
	var p Problem
	if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "urn:sluice:problem:invalid-order" || p.Title != "Invalid order" || p.Status != 422 {
		t.Errorf("problem = %+v", p)
	}
}

func TestShedRoundsRetryAfterUp(t *testing.T) {
	for _, c := range []struct {
		after time.Duration
		want  int
	}{
		{0, 1},
		{-time.Second, 1},
		{time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{2 * time.Second, 2},
		{2*time.Second + time.Nanosecond, 3},
		{90 * time.Second, 90},
	} {
		r := Shed(http.StatusTooManyRequests, c.after, "busy")
		got, err := strconv.Atoi(r.Headers["Retry-After"])
		if err != nil || got != c.want {
			t.Errorf("Shed(%v) Retry-After = %q, want %d", c.after, r.Headers["Retry-After"], c.want)
		}
	}
	r := Shed(http.StatusServiceUnavailable, time.Second, "store unavailable")
	var p Problem
	if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 503 || p.Status != 503 || p.Type != "urn:sluice:problem:overloaded" || p.Detail != "store unavailable" {
		t.Errorf("Shed = %+v, problem %+v", r, p)
	}
	if r.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("Content-Type = %q", r.Headers["Content-Type"])
	}
}

func TestJSONResponse(t *testing.T) {
	r := JSONResponse(http.StatusAccepted, map[string]any{"id": "o-1", "n": 2}, map[string]string{"Location": "/api/orders/o-1"})
	if r.StatusCode != http.StatusAccepted {
		t.Errorf("StatusCode = %d", r.StatusCode)
	}
	if r.Headers["Content-Type"] != "application/json" || r.Headers["Location"] != "/api/orders/o-1" {
		t.Errorf("Headers = %v", r.Headers)
	}
	if !jsonEqual(t, r.Body, `{"id":"o-1","n":2}`) {
		t.Errorf("Body = %s", r.Body)
	}
	raw := JSONResponse(http.StatusOK, json.RawMessage(`{"a":1}`), nil)
	if raw.Body != `{"a":1}` {
		t.Errorf("raw JSON body = %s", raw.Body)
	}
}

func TestJSONResponseUnencodable(t *testing.T) {
	r := JSONResponse(http.StatusOK, map[string]float64{"x": math.Inf(1)}, nil)
	if r.StatusCode != http.StatusInternalServerError || r.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("unencodable value gave %+v", r)
	}
}

func TestHTTPResponseAlwaysHasHeaders(t *testing.T) {
	b, err := json.Marshal(HTTPResponse{StatusCode: 204})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if string(got["headers"]) != "{}" || string(got["statusCode"]) != "204" || string(got["body"]) != `""` || len(got) != 3 {
		t.Errorf("HTTPResponse encodes as %s", b)
	}
	// Inside Outputs the value is held as any; it must encode the same way there.
	b, err = json.Marshal(Response{Outputs: map[string]any{"res": HTTPResponse{StatusCode: 200, Body: "ok"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, string(b), `{"Outputs":{"res":{"statusCode":200,"body":"ok","headers":{}}},"Logs":null,"ReturnValue":null}`) {
		t.Errorf("Response encodes as %s", b)
	}
}
