package invocation

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Problem is an RFC 9457 problem document. Field names the request member at fault, so a
// client can tell which part of its input to fix without parsing prose.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Field    string `json:"field,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ProblemResponse renders p as an HTTP output with the problem+json content type.
func ProblemResponse(p Problem) HTTPResponse {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	body, _ := json.Marshal(p)
	return HTTPResponse{
		StatusCode: p.Status,
		Body:       string(body),
		Headers:    map[string]string{"Content-Type": "application/problem+json"},
	}
}

// Shed renders a load-shedding answer: 429 or 503 with a Retry-After in whole seconds,
// rounded up so a client that honours it never comes back early.
func Shed(status int, retryAfter time.Duration, detail string) HTTPResponse {
	secs := int64((retryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	r := ProblemResponse(Problem{Type: "urn:sluice:problem:overloaded", Status: status, Detail: detail})
	r.Headers["Retry-After"] = strconv.FormatInt(secs, 10)
	return r
}

// JSONResponse renders v as a JSON HTTP output.
func JSONResponse(status int, v any, headers map[string]string) HTTPResponse {
	body, err := json.Marshal(v)
	if err != nil {
		return ProblemResponse(Problem{Status: http.StatusInternalServerError, Detail: "response could not be encoded"})
	}
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return HTTPResponse{StatusCode: status, Body: string(body), Headers: h}
}
