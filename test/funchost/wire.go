package funchost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wireValue converts a value the way the host's HttpScriptInvocationContext does before it
// goes into Data or Metadata: objects stay objects, byte slices become one base64 string,
// times lose their fraction, and everything else (strings, numbers, booleans, arrays) is
// JSON-serialised into a string, so a string arrives encoded twice.
func wireValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return t
	case []byte:
		return base64.StdEncoding.EncodeToString(t)
	case time.Time:
		return dateTimeOffset(t)
	default:
		// JsonConvert.SerializeObject escapes only quotes, backslashes and control
		// characters; encoding/json would also turn <, > and & into \u003c and so on.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(t); err != nil {
			return "null"
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
}

// dateTimeOffset is a DateTimeOffset after the host's ToString round trip: whole seconds
// and an explicit +00:00 offset.
func dateTimeOffset(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05") + "+00:00"
}

// sysMetadata is the sys object every trigger's metadata carries.
func sysMetadata(function string, now time.Time) map[string]any {
	return map[string]any{
		"MethodName": function,
		// Newtonsoft writes a DateTime with up to seven fraction digits, trailing zeros
		// dropped, and no fraction at all on a whole second.
		"UtcNow":   now.UTC().Format("2006-01-02T15:04:05.9999999Z"),
		"RandGuid": newGUID(),
	}
}

// applyJSONBindingData adds the top-level properties of a JSON object payload to a
// trigger's binding data, as the host's Utility.ApplyBindingData does for a queue
// message and the HTTP extension's copy of it does for a request body. Objects stay
// objects and nulls are left out; every other value becomes the string .NET's
// (string)JToken cast makes of it, in the invariant culture: 5 gives "5", true gives
// "True", and a string Newtonsoft reads as a date gives "04/06/2024 15:30:00". A property
// replaces binding data of the same name (binding data ignores case). The queue trigger's
// copy skips arrays; the HTTP extension keeps them, and the wire then carries their JSON
// text. Values are stored in wire form.
func applyJSONBindingData(meta map[string]any, payload string, keepArrays bool) {
	t := strings.TrimSpace(payload)
	if !strings.HasPrefix(t, "{") || !strings.HasSuffix(t, "}") {
		return
	}
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	if dec.Decode(&obj) != nil {
		return
	}
	for k, v := range obj {
		var val any
		switch x := v.(type) {
		case nil:
			continue
		case map[string]any:
			val = x
		case []any:
			if !keepArrays {
				continue
			}
			val = x
		case string:
			val = dotNetDateString(x)
		case bool:
			val = "False"
			if x {
				val = "True"
			}
		case json.Number:
			val = dotNetNumberString(x)
		}
		setFold(meta, k, wireValue(val))
	}
}

// setFold sets key in m, replacing an entry whose name differs only in case, as a
// dictionary with StringComparer.OrdinalIgnoreCase does (the first spelling stays).
func setFold(m map[string]any, key string, v any) {
	if k, ok := findKey(m, key); ok {
		key = k
	}
	m[key] = v
}

// finishMetadata drops what the host leaves out of Metadata: keys ending in "trigger"
// and null values.
func finishMetadata(meta map[string]any) {
	for k, v := range meta {
		if v == nil || strings.HasSuffix(strings.ToLower(k), "trigger") {
			delete(meta, k)
		}
	}
}

// isoDate is what Newtonsoft's reader takes for a DateTime (DateParseHandling.DateTime,
// the default of JObject.Parse): yyyy-MM-ddTHH:mm:ss, up to seven fraction digits, and
// an optional Z or offset.
var isoDate = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,7})?(Z|z|[+-]\d{2}(?::?\d{2})?)?$`)

// dotNetDateString returns s as the host sees it after parsing: an ISO date becomes a
// DateTime, which the invariant culture prints as MM/dd/yyyy HH:mm:ss without the
// fraction. An offset converts the time to the server's local time, UTC in Azure; with
// Z or no zone the clock time is kept. Anything else is returned unchanged.
func dotNetDateString(s string) string {
	m := isoDate.FindStringSubmatch(s)
	if m == nil {
		return s
	}
	n := make([]int, 7)
	for i := 1; i <= 6; i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	t := time.Date(n[1], time.Month(n[2]), n[3], n[4], n[5], n[6], 0, time.UTC)
	if t.Year() != n[1] || int(t.Month()) != n[2] || t.Day() != n[3] || t.Hour() != n[4] || t.Minute() != n[5] || t.Second() != n[6] {
		return s // not a real date, so Newtonsoft keeps the string
	}
	if z := m[7]; z != "" && z != "Z" && z != "z" {
		digits := strings.ReplaceAll(z[1:], ":", "")
		hh, _ := strconv.Atoi(digits[:2])
		mm := 0
		if len(digits) == 4 {
			mm, _ = strconv.Atoi(digits[2:])
		}
		off := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
		if z[0] == '-' {
			off = -off
		}
		t = t.Add(-off)
	}
	return t.Format("01/02/2006 15:04:05")
}

// dotNetNumberString prints a JSON number as .NET does after Newtonsoft read it:
// integers as their digits; other numbers as a double, shortest round-trip digits, in E
// notation below 1E-04 and from 1E+15.
func dotNetNumberString(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	e := strconv.FormatFloat(f, 'E', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'E')+1:])
	if f == 0 || (exp >= -4 && exp < 15) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return e
}

// invocationResult is the handler's reply body. The host matches the three top-level
// names case-insensitively and the binding names inside Outputs exactly.
type invocationResult struct {
	Outputs     map[string]json.RawMessage
	Logs        []string
	ReturnValue json.RawMessage
}

// readResult applies the host's rules to a handler response: any non-2xx fails and its
// body (logs included) is ignored, the content type must be JSON, and the body must parse.
func readResult(status int, contentType string, body []byte) (*invocationResult, error) {
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("Response status code does not indicate success: %d", status)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "application/json" && mt != "text/json") {
		return nil, fmt.Errorf("UnsupportedMediaTypeException: no formatter reads content of type %q", contentType)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, errEmptyResult
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, fmt.Errorf("Invalid HttpResponseMessage: %v", err)
	}
	r := &invocationResult{}
	for k, v := range top {
		switch strings.ToLower(k) {
		case "outputs":
			if isNull(v) {
				continue
			}
			if err := json.Unmarshal(v, &r.Outputs); err != nil {
				return nil, fmt.Errorf("Invalid HttpResponseMessage: Outputs: %v", err)
			}
		case "logs":
			if isNull(v) {
				continue
			}
			var raw []json.RawMessage
			if err := json.Unmarshal(v, &raw); err != nil {
				return nil, fmt.Errorf("Invalid HttpResponseMessage: Logs: %v", err)
			}
			for _, l := range raw {
				r.Logs = append(r.Logs, dotNetString(l))
			}
		case "returnvalue":
			r.ReturnValue = v
		}
	}
	return r, nil
}

// errEmptyResult marks a 2xx reply with no body. The real host deserialises it to null
// and never completes the invocation, so it hangs until the function times out; the
// imitation fails the invocation at once and says so loudly instead.
var errEmptyResult = errors.New("handler returned a 2xx with an empty body: the real host never completes such an invocation and waits for functionTimeout; always return at least {}")

func isNull(v json.RawMessage) bool {
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}

// dotNetString renders a JSON token as .NET's ToString of the parsed value would.
func dotNetString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	t := strings.TrimSpace(string(v))
	switch t {
	case "true":
		return "True"
	case "false":
		return "False"
	case "null":
		return ""
	}
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return indentJSON([]byte(t))
	}
	return t
}

// indentJSON formats JSON as Newtonsoft's JToken.ToString does: two-space indent.
func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// bindingValue is the host's GetBindingValue: unless the binding's dataType is binary, a
// string that happens to be valid base64 is replaced by the bytes it decodes to.
type bindingValue struct {
	bytes []byte          // set when the value became bytes
	json  json.RawMessage // otherwise the JSON value
}

func convertOutput(raw json.RawMessage, dataType string) bindingValue {
	var s string
	if !strings.EqualFold(dataType, "binary") && json.Unmarshal(raw, &s) == nil {
		if b, ok := strictBase64(s); ok {
			return bindingValue{bytes: b}
		}
	}
	return bindingValue{json: raw}
}

// strictBase64 is .NET's Convert.TryFromBase64String: whole groups of four characters
// from the base64 alphabet with correct padding. The empty string decodes to no bytes,
// but the host does not treat it as base64.
func strictBase64(s string) ([]byte, bool) {
	if s == "" || len(s)%4 != 0 {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}

// queueMessages turns a queue output value into message bodies the way the host's
// IAsyncCollector<byte[]> binding does: an array gives one message per element, a JSON
// object gives its indented text, and a string that looks like JSON is parsed first.
func queueMessages(v bindingValue) ([][]byte, error) {
	if v.bytes != nil {
		return [][]byte{v.bytes}, nil
	}
	raw := bytes.TrimSpace(v.json)
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		t := strings.TrimSpace(s)
		if isJSONLooking(t) {
			if !json.Valid([]byte(t)) {
				return nil, fmt.Errorf("queue output string looks like JSON but does not parse")
			}
			raw = []byte(t)
		} else {
			return [][]byte{[]byte(s)}, nil
		}
	}
	switch raw[0] {
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, err
		}
		var out [][]byte
		for _, e := range elems {
			if isNull(e) {
				continue
			}
			out = append(out, []byte(dotNetString(e)))
		}
		return out, nil
	default:
		return [][]byte{[]byte(dotNetString(raw))}, nil
	}
}

func isJSONLooking(s string) bool {
	return len(s) >= 2 && ((s[0] == '{' && s[len(s)-1] == '}') || (s[0] == '[' && s[len(s)-1] == ']'))
}

// httpOutput is the host's HttpOutputBindingResponse after re-parsing.
type httpOutput struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// parseHTTPOutput applies the host's rules for an http output binding value.
func parseHTTPOutput(v bindingValue) (*httpOutput, error) {
	if v.bytes != nil {
		return nil, fmt.Errorf("Failed while trying to Deserialize to httpOutputBindingResponse: the value was a base64 string")
	}
	raw := bytes.TrimSpace(v.json)
	if isNull(raw) {
		return &httpOutput{Status: 200, Headers: [][2]string{{"Content-Type", "application/json; charset=utf-8"}}, Body: []byte("{}")}, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("Failed while trying to Deserialize to httpOutputBindingResponse: %q is not JSON", truncate(s, 80))
		}
		raw = []byte(s)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("Failed while trying to Deserialize to httpOutputBindingResponse: %v", err)
	}
	out := &httpOutput{Status: 200}
	contentType := ""
	for k, val := range obj {
		switch strings.ToLower(k) {
		case "statuscode":
			if isNull(val) {
				continue
			}
			var n json.Number
			if err := json.Unmarshal(val, &n); err != nil {
				var s string
				if json.Unmarshal(val, &s) != nil {
					return nil, fmt.Errorf("statusCode %s is neither a number nor a numeric string", val)
				}
				n = json.Number(strings.TrimSpace(s))
			}
			code, err := strconv.Atoi(n.String())
			if err != nil || code < 100 || code > 999 {
				return nil, fmt.Errorf("statusCode %s is not an HTTP status code", val)
			}
			out.Status = code
		case "headers":
			if isNull(val) {
				continue
			}
			var hs map[string]json.RawMessage
			if err := json.Unmarshal(val, &hs); err != nil {
				return nil, fmt.Errorf("headers must be an object: %v", err)
			}
			for name, hv := range hs {
				if strings.EqualFold(name, "Content-Type") {
					if isNull(hv) {
						return nil, fmt.Errorf("the Content-Type header is null")
					}
					contentType = dotNetString(hv)
					continue
				}
				out.Headers = append(out.Headers, [2]string{name, dotNetString(hv)})
			}
		case "body":
			if isNull(val) {
				continue
			}
			out.Body = []byte(dotNetString(val))
		}
	}
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	out.Headers = append(out.Headers, [2]string{"Content-Type", contentType})
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
