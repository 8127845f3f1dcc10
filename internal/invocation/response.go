package invocation

import "encoding/json"

// Response is what the handler answers the host: the values of the output bindings, log
// lines tied to the invocation, and the $return value.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// HTTPResponse is the value of an HTTP output binding. Body is a string because the host
// writes a string body verbatim, while it re-indents an object body and, without a
// Content-Type header, labels it text/plain.
type HTTPResponse struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// MarshalJSON always includes headers, so the
// host never falls back to its text/plain default for a JSON body.
func (r HTTPResponse) MarshalJSON() ([]byte, error) {
	type wire struct {
		StatusCode int               `json:"statusCode"`
		Body       string            `json:"body"`
		Headers    map[string]string `json:"headers"`
	}
	h := r.Headers
	if h == nil {
		h = map[string]string{}
	}
	return json.Marshal(wire{StatusCode: r.StatusCode, Body: r.Body, Headers: h})
}

// QueueMessageValue wraps a JSON document for a queue output binding. The host stores an
// object as one message; a plain string output would instead be base64-decoded by the host
// whenever it happens to look like base64, so documents are always sent as objects.
type QueueMessageValue = json.RawMessage
