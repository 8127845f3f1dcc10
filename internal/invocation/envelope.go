package invocation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is the body of the host's POST /<FunctionName>: one entry in Data per input
// binding (the trigger among them) and the trigger's binding data in Metadata.
type Request struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// ErrMissingBinding reports that the envelope carries no value for a binding the
// function reads.
var ErrMissingBinding = errors.New("invocation: binding missing from Data")

// DecodeRequest parses an envelope. Keys are matched exactly as the host writes them
// (PascalCase); an envelope without Data is an error, because every function has a trigger.
func DecodeRequest(body []byte) (*Request, error) {
	// One pass: encoding/json matches the two names case-insensitively, the way the
	// host itself reads handler replies, rejects trailing data after the object, and
	// keeps every binding's value raw for the accessors to decode on demand.
	var env struct {
		Data     map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &env); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			name := strings.SplitN(te.Field, ".", 2)[0]
			if strings.EqualFold(name, "Data") || strings.EqualFold(name, "Metadata") {
				return nil, fmt.Errorf("invocation: %s: not a JSON object", name)
			}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) && trailingData(body, se) {
			return nil, errors.New("invocation: trailing data after the envelope")
		}
		return nil, fmt.Errorf("invocation: envelope is not a JSON object: %w", err)
	}
	if env.Data == nil {
		return nil, errors.New("invocation: envelope has no Data")
	}
	if env.Metadata == nil {
		env.Metadata = map[string]json.RawMessage{}
	}
	return &Request{Data: env.Data, Metadata: env.Metadata}, nil
}

// trailingData reports whether a syntax error lies after a complete top-level value, so
// the error can say what is wrong.
func trailingData(body []byte, se *json.SyntaxError) bool {
	if se.Offset <= 0 || se.Offset > int64(len(body)) {
		return false
	}
	return json.Valid(bytes.TrimSpace(body[:se.Offset-1]))
}

func isNull(v json.RawMessage) bool {
	return len(bytes.TrimSpace(v)) == 0 || string(bytes.TrimSpace(v)) == "null"
}

// Text returns the text carried by a binding value, the way a queue message or a string
// input arrives:
//   - the real host's form, a string serialised twice ("\"{\\\"a\\\":1}\"");
//   - the documented form, a plain JSON string ("{\"a\":1}");
//   - the documented form for a JSON message, the object itself ({"a":1}), returned as its
//     JSON text.
//
// A documented-form message whose text is itself a JSON string literal is indistinguishable
// from the real host's form and is unwrapped twice; the real host never sends that shape.
func Text(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return "", ErrMissingBinding
	}
	if v[0] != '"' {
		// An object, array, number or bool sent as itself (the documented form).
		return string(v), nil
	}
	once, err := jsonString(v)
	if err != nil {
		return "", fmt.Errorf("invocation: binding value is not a JSON string: %w", err)
	}
	return unquoteIfLiteral(once), nil
}

// unquoteIfLiteral undoes the host's second serialisation: if s is itself a complete JSON
// string literal, it returns the literal's content; otherwise s unchanged.
func unquoteIfLiteral(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	twice, err := jsonString([]byte(s))
	if err != nil {
		return s
	}
	return twice
}

// jsonString decodes one JSON string literal. Most values on the wire (ids, counts,
// times, plain text) hold no escapes and only printable ASCII; those are sliced out
// directly instead of going through encoding/json, which is where an invocation
// otherwise spends most of its time.
func jsonString(lit []byte) (string, error) {
	if n := len(lit); n >= 2 && lit[0] == '"' && lit[n-1] == '"' {
		plain := true
		for _, c := range lit[1 : n-1] {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return string(lit[1 : n-1]), nil
		}
		if out, ok := unescapeSimple(lit[1 : n-1]); ok {
			return out, nil
		}
	}
	var out string
	err := json.Unmarshal(lit, &out)
	return out, err
}

// unescapeSimple decodes the body of a JSON string literal that holds valid UTF-8 and
// only the two-character escapes, which is how the host's serialiser writes a nested
// JSON document (\" and \\). Anything else (\u escapes, a bare quote, a control
// character, invalid UTF-8) reports ok == false and is left to encoding/json.
func unescapeSimple(body []byte) (string, bool) {
	if !utf8.Valid(body) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"' || c < 0x20:
			return "", false
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(body) {
			return "", false
		}
		switch body[i] {
		case '"', '\\', '/':
			b.WriteByte(body[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// MetaString returns a Metadata value as a string, accepting the real host's quoted form
// ("\"abc\"") and the documented plain form ("abc"). A missing key gives "".
func (r *Request) MetaString(key string) string {
	v, ok := r.Metadata[key]
	if !ok || isNull(v) {
		return ""
	}
	s, err := Text(v)
	if err != nil {
		return ""
	}
	return s
}

// MetaInt returns a Metadata value as an integer: the host sends numbers as strings ("5"),
// the documentation as numbers (5). A missing or malformed value gives ok == false.
func (r *Request) MetaInt(key string) (n int64, ok bool) {
	s := r.MetaString(key)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return n, true
}

// MetaTime returns a Metadata time. The host formats DateTimeOffset values without
// fractional seconds ("2024-05-10T16:13:45+00:00"); the documentation includes them.
func (r *Request) MetaTime(key string) (time.Time, bool) {
	s := r.MetaString(key)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "01/02/2006 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// QueueMessage is the trigger data of a queue-triggered invocation.
//
// Everything but Text comes from Metadata, where the host lets the top-level properties
// of a JSON message override its own binding data: an order with an "id" member arrives
// with that id as Metadata.Id, not the queue message's. Treat these fields as
// diagnostics, never as a key, and a value that does not parse as absent (zero).
type QueueMessage struct {
	Text            string
	ID              string
	PopReceipt      string
	DequeueCount    int64
	InsertionTime   time.Time
	ExpirationTime  time.Time
	NextVisibleTime time.Time
}

// QueueTrigger decodes the queue message bound to the trigger named binding.
func (r *Request) QueueTrigger(binding string) (*QueueMessage, error) {
	v, ok := r.Data[binding]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrMissingBinding, binding)
	}
	text, err := Text(v)
	if err != nil {
		return nil, fmt.Errorf("queue trigger %q: %w", binding, err)
	}
	m := &QueueMessage{Text: text, ID: r.MetaString("Id"), PopReceipt: r.MetaString("PopReceipt")}
	m.DequeueCount, _ = r.MetaInt("DequeueCount")
	m.InsertionTime, _ = r.MetaTime("InsertionTime")
	m.ExpirationTime, _ = r.MetaTime("ExpirationTime")
	m.NextVisibleTime, _ = r.MetaTime("NextVisibleTime")
	return m, nil
}

// HTTPRequest is the request object the host puts in Data for an HTTP trigger.
type HTTPRequest struct {
	URL        string
	Method     string
	Query      map[string]string
	Headers    map[string][]string
	Params     map[string]string
	Identities []json.RawMessage
	// Body is the raw body as the host forwards it, nil when the request had none. For
	// application/octet-stream and multipart bodies the host sends base64.
	Body *string
}

// Header returns the first value of a request header, matched case-insensitively.
func (h *HTTPRequest) Header(name string) string {
	for k, vs := range h.Headers {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

type wireHTTPRequest struct {
	URL        string            `json:"Url"`
	Method     string            `json:"Method"`
	Query      members           `json:"Query"`
	Headers    members           `json:"Headers"`
	Params     members           `json:"Params"`
	Identities []json.RawMessage `json:"Identities"`
	Body       json.RawMessage   `json:"Body"`
}

// members is a JSON object's members. The documented sample sends the query as a string
// holding the object ("Query":"{}") where the real host sends the object itself; both
// decode to the same members.
type members map[string]json.RawMessage

func (m *members) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		b = []byte(s)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*m = obj
	return nil
}

// HTTPTrigger decodes the HTTP request bound to the trigger named binding.
func (r *Request) HTTPTrigger(binding string) (*HTTPRequest, error) {
	v, ok := r.Data[binding]
	if !ok || isNull(v) {
		return nil, fmt.Errorf("%w: %q", ErrMissingBinding, binding)
	}
	var w wireHTTPRequest
	if err := json.Unmarshal(v, &w); err != nil {
		return nil, fmt.Errorf("http trigger %q: %w", binding, err)
	}
	req := &HTTPRequest{
		URL:        w.URL,
		Method:     strings.ToUpper(w.Method),
		Query:      map[string]string{},
		Headers:    map[string][]string{},
		Params:     map[string]string{},
		Identities: w.Identities,
	}
	for k, raw := range w.Query {
		req.Query[k] = scalarText(raw)
	}
	for k, raw := range w.Headers {
		// The host sends header values as arrays; the documentation shows plain strings.
		var list []string
		if err := json.Unmarshal(raw, &list); err == nil {
			req.Headers[k] = list
			continue
		}
		req.Headers[k] = []string{scalarText(raw)}
	}
	for k, raw := range w.Params {
		req.Params[k] = scalarText(raw)
	}
	if !isNull(w.Body) {
		var body string
		if err := json.Unmarshal(w.Body, &body); err != nil {
			// The documented sample shows a JSON body as an object; keep its text.
			body = string(w.Body)
		}
		req.Body = &body
	}
	return req, nil
}

// scalarText renders a member of the request object as text: strings lose their quotes,
// numbers and bools keep their literal form, null is "". The request object is nested
// JSON, so its strings are encoded once, not twice like a binding value: a query value
// that is itself quoted (q="exact phrase") must keep its quotes, which Text would strip.
func scalarText(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}
