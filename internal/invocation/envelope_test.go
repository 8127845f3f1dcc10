package invocation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The envelopes below are written out byte for byte in the shapes the Functions host
// sends (strings serialised twice, numbers as strings, Id and PopReceipt with their own
// quotes, times without fractions) and in the shapes the custom-handler documentation
// shows (plain numbers and strings, a JSON message as an object, the query as a string).

// realQueueEnvelope carries the message {"orderId":"o-1001","customerId":"c-7","total":42.5}
// as the host delivers it on the fifth attempt, with the message's top-level scalar
// properties repeated in Metadata and a culture-formatted date among them.
const realQueueEnvelope = `{"Data":{"msg":"\"{\\\"orderId\\\":\\\"o-1001\\\",\\\"customerId\\\":\\\"c-7\\\",\\\"total\\\":42.5}\""},` +
	`"Metadata":{"DequeueCount":"5","ExpirationTime":"2024-05-17T16:13:45+00:00",` +
	`"Id":"\"4434c659-2f5c-4a67-b7c1-0e4b3cf1d6a2\"","InsertionTime":"2024-05-10T16:13:45+00:00",` +
	`"NextVisibleTime":"2024-05-10T16:23:46+00:00","PopReceipt":"\"AgAAAAMAAAAAAAAAw8mXbPqi2gE=\"",` +
	`"orderId":"\"o-1001\"","customerId":"\"c-7\"","total":"42.5","timestamp":"\"04/06/2024 15:30:00\"",` +
	`"sys":{"MethodName":"process","UtcNow":"2024-05-10T16:13:46.1234567Z","RandGuid":"0f4bd4a0-5d5b-4b59-a0e6-2c2b4f2a9c11"}}}`

const realQueueText = `{"orderId":"o-1001","customerId":"c-7","total":42.5}`

// realQueueHelloEnvelope is the reference's sample for the plain-text message "hello".
const realQueueHelloEnvelope = `{"Data":{"msg":"\"hello\""},
 "Metadata":{"DequeueCount":"1","ExpirationTime":"2025-01-08T10:00:00+00:00","Id":"\"6f0c2a1e-8d44-4f4e-9a55-3c1b2d9e7f10\"",
  "InsertionTime":"2025-01-01T10:00:00+00:00","NextVisibleTime":"2025-01-01T10:10:01+00:00",
  "PopReceipt":"\"AgAAAAMAAAAAAAAAQb2x1dJb2wE=\"","sys":{"MethodName":"QueueFn","UtcNow":"2025-01-01T10:00:01.1234567Z","RandGuid":"b2a4f7e0-1c3d-4e5f-8a9b-0c1d2e3f4a5b"}}}`

// docsQueueEnvelope is the documentation's sample: plain number and strings.
const docsQueueEnvelope = `{
  "Data": {
    "myQueueItem": "{ message: \"Message sent\" }"
  },
  "Metadata": {
    "DequeueCount": 1,
    "ExpirationTime": "2019-10-16T17:58:31+00:00",
    "Id": "800ae4b3-bdd2-4c08-badd-f08e5a34b865",
    "InsertionTime": "2019-10-09T17:58:31+00:00",
    "NextVisibleTime": "2019-10-09T18:08:32+00:00",
    "PopReceipt": "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
    "sys": {
      "MethodName": "QueueTrigger",
      "UtcNow": "2019-10-09T17:58:32.2205399Z",
      "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9"
    }
  }
}`

// docsQueueObjectEnvelope sends a JSON message as the object itself.
const docsQueueObjectEnvelope = `{"Data":{"myQueueItem":{ "orderId": "o-1001", "total": 42.5 }},
  "Metadata":{"DequeueCount":2,"Id":"800ae4b3-bdd2-4c08-badd-f08e5a34b865","PopReceipt":"AgAAAAMAAAAAAAAAAgtnj8x+1QE="}}`

// realHTTPEnvelope is POST /api/orders/c-7/o-1001?q="exact phrase"&tag=a&tag=b with a JSON
// body, as the host builds it: Data.req with header arrays and comma-joined repeated query
// keys; Metadata with header strings and one quoted key per query value, route parameter
// and body property.
const realHTTPEnvelope = `{"Data":{"req":{"Url":"http://localhost:7071/api/orders/c-7/o-1001?q=%22exact+phrase%22&tag=a&tag=b","Method":"POST",` +
	`"Query":{"q":"\"exact phrase\"","tag":"a,b"},` +
	`"Headers":{"Accept":["application/json"],"Content-Length":["34"],"Content-Type":["application/json; charset=utf-8"],` +
	`"Host":["localhost:7071"],"If-None-Match":["\"v1\""],"User-Agent":["curl/8.5.0"]},` +
	`"Params":{"customerId":"c-7","id":"o-1001"},` +
	`"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,` +
	`"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}],` +
	`"Body":"{\"orderId\":\"o-1001\",\"total\":42.5}"}},` +
	`"Metadata":{"Query":{"q":"\"exact phrase\"","tag":"a,b"},` +
	`"Headers":{"Accept":"application/json","Content-Length":"34","Content-Type":"application/json; charset=utf-8","Host":"localhost:7071","If-None-Match":"\"v1\"","User-Agent":"curl/8.5.0"},` +
	`"q":"\"\\\"exact phrase\\\"\"","tag":"\"a,b\"","customerId":"\"c-7\"","id":"\"o-1001\"","orderId":"\"o-1001\"","total":"42.5",` +
	`"sys":{"MethodName":"write","UtcNow":"2024-05-14T15:14:15.128919Z","RandGuid":"5e0c7f0e-3b8a-4a57-9f0d-6c1e2b3a4d5f"}}}`

const realHTTPBody = `{"orderId":"o-1001","total":42.5}`

// realHTTPGetEnvelope is a GET without a body: the host leaves Body out.
const realHTTPGetEnvelope = `{"Data":{"req":{"Url":"http://localhost:7071/api/orders/c-7/o-1001","Method":"GET","Query":{},` +
	`"Headers":{"Host":["localhost:7071"]},"Params":{"customerId":"c-7","id":"o-1001"},` +
	`"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":null,"RoleClaimType":null}]}},` +
	`"Metadata":{"Query":{},"Headers":{"Host":"localhost:7071"},"customerId":"\"c-7\"","id":"\"o-1001\"",` +
	`"sys":{"MethodName":"read","UtcNow":"2024-05-14T15:14:15.1289190Z","RandGuid":"5e0c7f0e-3b8a-4a57-9f0d-6c1e2b3a4d5f"}}}`

// realHTTPOctetEnvelope carries the bytes 00 01 02 ff sent as application/octet-stream,
// which the host forwards base64-encoded.
const realHTTPOctetEnvelope = `{"Data":{"req":{"Url":"http://localhost:7071/api/upload","Method":"POST","Query":{},` +
	`"Headers":{"Content-Length":["4"],"Content-Type":["application/octet-stream"]},"Params":{},"Identities":[],` +
	`"Body":"AAEC/w=="}},"Metadata":{"Query":{},"Headers":{"Content-Type":"application/octet-stream"},` +
	`"sys":{"MethodName":"upload","UtcNow":"2024-05-14T15:14:15.1289190Z","RandGuid":"5e0c7f0e-3b8a-4a57-9f0d-6c1e2b3a4d5f"}}}`

// docsHTTPEnvelope is the documentation's sample, with the query as a string.
const docsHTTPEnvelope = `{
  "Data": {
    "req": {
      "Url": "http://localhost:7071/api/order",
      "Method": "POST",
      "Query": "{}",
      "Headers": {
        "Content-Type": [
          "application/json"
        ]
      },
      "Params": {},
      "Body": "{\"id\":1005,\"quantity\":2,\"color\":\"black\"}"
    }
  },
  "Metadata": {
  }
}`

// hostEncode serialises s the way the host serialises a string binding value: once by
// JsonConvert, and again as a member of the envelope.
func hostEncode(t testing.TB, s string) json.RawMessage {
	t.Helper()
	once, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := json.Marshal(string(once))
	if err != nil {
		t.Fatal(err)
	}
	return twice
}

func mustDecode(t testing.TB, body string) *Request {
	t.Helper()
	r, err := DecodeRequest([]byte(body))
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	return r
}

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// jsonEqual reports whether a and b are the same JSON document, whitespace aside.
func jsonEqual(t testing.TB, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("not JSON: %q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestDecodeRequestAcceptsEnvelopes(t *testing.T) {
	for name, body := range map[string]string{
		"real queue":          realQueueEnvelope,
		"real queue hello":    realQueueHelloEnvelope,
		"docs queue":          docsQueueEnvelope,
		"docs queue object":   docsQueueObjectEnvelope,
		"real http":           realHTTPEnvelope,
		"real http get":       realHTTPGetEnvelope,
		"real http octet":     realHTTPOctetEnvelope,
		"docs http":           docsHTTPEnvelope,
		"camel-cased keys":    `{"data":{"msg":"\"x\""},"metadata":{"DequeueCount":"1"}}`,
		"no metadata":         `{"Data":{"msg":"\"x\""}}`,
		"null metadata":       `{"Data":{"msg":"\"x\""},"Metadata":null}`,
		"extra top-level key": `{"Data":{"msg":"\"x\""},"Metadata":{},"Other":[1,2]}`,
		"surrounding space":   " \n\t{\"Data\":{}}\r\n ",
	} {
		t.Run(name, func(t *testing.T) {
			r := mustDecode(t, body)
			if r.Data == nil || r.Metadata == nil {
				t.Fatalf("Data = %v, Metadata = %v; want both non-nil", r.Data, r.Metadata)
			}
		})
	}
}

func TestDecodeRequestKeepsEveryKey(t *testing.T) {
	r := mustDecode(t, realQueueEnvelope)
	if got := len(r.Data); got != 1 {
		t.Errorf("Data has %d keys, want 1", got)
	}
	want := []string{"DequeueCount", "ExpirationTime", "Id", "InsertionTime", "NextVisibleTime", "PopReceipt",
		"orderId", "customerId", "total", "timestamp", "sys"}
	for _, k := range want {
		if _, ok := r.Metadata[k]; !ok {
			t.Errorf("Metadata lacks %q", k)
		}
	}
	if len(r.Metadata) != len(want) {
		t.Errorf("Metadata has %d keys, want %d", len(r.Metadata), len(want))
	}
	lower := mustDecode(t, `{"data":{"msg":"\"x\""},"metadata":{"Id":"\"i\""}}`)
	if lower.MetaString("Id") != "i" || len(lower.Data) != 1 {
		t.Errorf("lower-case envelope keys were not read: Data=%v Metadata=%v", lower.Data, lower.Metadata)
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	for name, body := range map[string]string{
		"empty":                  ``,
		"blank":                  "  \n",
		"not JSON":               `Data=1`,
		"array":                  `[{"Data":{}}]`,
		"string":                 `"{\"Data\":{}}"`,
		"null":                   `null`,
		"no Data":                `{"Metadata":{}}`,
		"null Data":              `{"Data":null,"Metadata":{}}`,
		"Data array":             `{"Data":[1],"Metadata":{}}`,
		"Data string":            `{"Data":"{}","Metadata":{}}`,
		"Metadata array":         `{"Data":{},"Metadata":[]}`,
		"truncated":              `{"Data":{"msg":"\"x\""}`,
		"trailing value":         `{"Data":{}} {"Data":{}}`,
		"trailing garbage":       `{"Data":{}} x`,
		"trailing closing brace": `{"Data":{}}}`,
		"trailing closing brack": `{"Data":{}}]`,
		"trailing comma":         `{"Data":{}},`,
	} {
		t.Run(name, func(t *testing.T) {
			r, err := DecodeRequest([]byte(body))
			if err == nil {
				t.Fatalf("accepted %q as %+v", body, r)
			}
			if r != nil {
				t.Errorf("returned a request alongside error %v", err)
			}
		})
	}
}

func TestQueueTriggerRealHostForm(t *testing.T) {
	r := mustDecode(t, realQueueEnvelope)
	m, err := r.QueueTrigger("msg")
	if err != nil {
		t.Fatal(err)
	}
	want := &QueueMessage{
		Text:            realQueueText,
		ID:              "4434c659-2f5c-4a67-b7c1-0e4b3cf1d6a2",
		PopReceipt:      "AgAAAAMAAAAAAAAAw8mXbPqi2gE=",
		DequeueCount:    5,
		InsertionTime:   utc(2024, 5, 10, 16, 13, 45),
		ExpirationTime:  utc(2024, 5, 17, 16, 13, 45),
		NextVisibleTime: utc(2024, 5, 10, 16, 23, 46),
	}
	assertQueueMessage(t, m, want)
}

func TestQueueTriggerRealHostPlainText(t *testing.T) {
	m, err := mustDecode(t, realQueueHelloEnvelope).QueueTrigger("msg")
	if err != nil {
		t.Fatal(err)
	}
	assertQueueMessage(t, m, &QueueMessage{
		Text:            "hello",
		ID:              "6f0c2a1e-8d44-4f4e-9a55-3c1b2d9e7f10",
		PopReceipt:      "AgAAAAMAAAAAAAAAQb2x1dJb2wE=",
		DequeueCount:    1,
		InsertionTime:   utc(2025, 1, 1, 10, 0, 0),
		ExpirationTime:  utc(2025, 1, 8, 10, 0, 0),
		NextVisibleTime: utc(2025, 1, 1, 10, 10, 1),
	})
}

func TestQueueTriggerDocumentedForm(t *testing.T) {
	m, err := mustDecode(t, docsQueueEnvelope).QueueTrigger("myQueueItem")
	if err != nil {
		t.Fatal(err)
	}
	assertQueueMessage(t, m, &QueueMessage{
		Text:            `{ message: "Message sent" }`,
		ID:              "800ae4b3-bdd2-4c08-badd-f08e5a34b865",
		PopReceipt:      "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
		DequeueCount:    1,
		InsertionTime:   utc(2019, 10, 9, 17, 58, 31),
		ExpirationTime:  utc(2019, 10, 16, 17, 58, 31),
		NextVisibleTime: utc(2019, 10, 9, 18, 8, 32),
	})
}

func TestQueueTriggerDocumentedObjectMessage(t *testing.T) {
	m, err := mustDecode(t, docsQueueObjectEnvelope).QueueTrigger("myQueueItem")
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, m.Text, `{"orderId":"o-1001","total":42.5}`) {
		t.Errorf("Text = %q, want the object's JSON", m.Text)
	}
	if m.DequeueCount != 2 || m.ID != "800ae4b3-bdd2-4c08-badd-f08e5a34b865" {
		t.Errorf("DequeueCount = %d, ID = %q", m.DequeueCount, m.ID)
	}
	if !m.InsertionTime.IsZero() {
		t.Errorf("InsertionTime = %v for an envelope without one, want zero", m.InsertionTime)
	}
}

func assertQueueMessage(t *testing.T, got, want *QueueMessage) {
	t.Helper()
	if got.Text != want.Text {
		t.Errorf("Text = %q, want %q", got.Text, want.Text)
	}
	if got.ID != want.ID {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.PopReceipt != want.PopReceipt {
		t.Errorf("PopReceipt = %q, want %q", got.PopReceipt, want.PopReceipt)
	}
	if got.DequeueCount != want.DequeueCount {
		t.Errorf("DequeueCount = %d, want %d", got.DequeueCount, want.DequeueCount)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"InsertionTime", got.InsertionTime, want.InsertionTime},
		{"ExpirationTime", got.ExpirationTime, want.ExpirationTime},
		{"NextVisibleTime", got.NextVisibleTime, want.NextVisibleTime},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestQueueTriggerMissingBinding(t *testing.T) {
	r := mustDecode(t, `{"Data":{"msg":null,"other":"\"x\""},"Metadata":{}}`)
	for _, name := range []string{"msg", "absent", "Other"} {
		if _, err := r.QueueTrigger(name); !errors.Is(err, ErrMissingBinding) {
			t.Errorf("QueueTrigger(%q) error = %v, want ErrMissingBinding", name, err)
		}
	}
}

func TestQueueMessageScalarMetadata(t *testing.T) {
	r := mustDecode(t, realQueueEnvelope)
	for key, want := range map[string]string{"orderId": "o-1001", "customerId": "c-7", "total": "42.5", "missing": ""} {
		if got := r.MetaString(key); got != want {
			t.Errorf("MetaString(%q) = %q, want %q", key, got, want)
		}
	}
	if n, ok := r.MetaInt("total"); ok {
		t.Errorf("MetaInt(total) = %d, true for 42.5; want not ok", n)
	}
	// The host formats a date inside the message by its culture (month first).
	if got, ok := r.MetaTime("timestamp"); !ok || !got.Equal(utc(2024, 4, 6, 15, 30, 0)) {
		t.Errorf("MetaTime(timestamp) = %v, %v; want 2024-04-06 15:30 UTC", got, ok)
	}
	var sys struct{ MethodName, UtcNow, RandGuid string }
	if err := json.Unmarshal([]byte(r.MetaString("sys")), &sys); err != nil {
		t.Fatalf("MetaString(sys) is not the sys object: %v", err)
	}
	if sys.MethodName != "process" || sys.UtcNow != "2024-05-10T16:13:46.1234567Z" {
		t.Errorf("sys = %+v", sys)
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct {
		name, raw, want string
	}{
		{"host string", `"\"hello\""`, "hello"},
		{"host JSON text", `"\"{\\\"a\\\":1}\""`, `{"a":1}`},
		{"host empty string", `"\"\""`, ""},
		{"host text null", `"\"null\""`, "null"},
		{"host quoted text", `"\"\\\"quoted\\\"\""`, `"quoted"`},
		{"host unicode", `"\"gr\\u00FC\\u00DF \u2603\""`, "grüß ☃"},
		{"docs string", `"{ message: \"Message sent\" }"`, `{ message: "Message sent" }`},
		{"docs plain", `"hello"`, "hello"},
		{"docs object", `{"a":1}`, `{"a":1}`},
		{"docs array", ` [1, 2] `, `[1, 2]`},
		{"number", `5`, `5`},
		{"bool", `true`, `true`},
		{"lone quote", `"\""`, `"`},
		// A documented-form text that is itself a JSON string literal reads like the
		// host's form and is unwrapped twice; the package documents this.
		{"docs literal", `"\"x\""`, "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Text(json.RawMessage(c.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("Text(%s) = %q, want %q", c.raw, got, c.want)
			}
		})
	}
	for _, raw := range []string{``, `  `, `null`, ` null `} {
		if _, err := Text(json.RawMessage(raw)); !errors.Is(err, ErrMissingBinding) {
			t.Errorf("Text(%q) error = %v, want ErrMissingBinding", raw, err)
		}
	}
	if _, err := Text(json.RawMessage(`"unterminated`)); err == nil || errors.Is(err, ErrMissingBinding) {
		t.Errorf("Text of a broken string: error = %v, want a decoding error", err)
	}
}

// TestTextUndoesHostEncoding checks the property the real host relies on: whatever the
// message text, serialising it twice and reading it with Text gives it back.
func TestTextUndoesHostEncoding(t *testing.T) {
	for _, s := range []string{"", " ", "hello", `"`, `""`, `"x"`, `\`, `\"`, "null", "5", "true", `{"a":[1,"b"]}`,
		`["x"]`, "line1\nline2\ttab", "<b>&amp;</b>", "\u2028\u2029", "emoji 🦀", "\x00\x1f"} {
		got, err := Text(hostEncode(t, s))
		if err != nil {
			t.Errorf("Text(host(%q)): %v", s, err)
			continue
		}
		if got != s {
			t.Errorf("Text(host(%q)) = %q", s, got)
		}
	}
}

func TestMetaInt(t *testing.T) {
	for _, c := range []struct {
		raw    string
		want   int64
		wantOK bool
	}{
		{`"5"`, 5, true}, // the host's form
		{`5`, 5, true},   // the documented form
		{`"0"`, 0, true},
		{`"-3"`, -3, true},
		{`"9223372036854775807"`, 9223372036854775807, true},
		{`"5.0"`, 5, true},
		{`5.0`, 5, true},
		{`"5.5"`, 0, false},
		{`"five"`, 0, false},
		{`""`, 0, false},
		{`null`, 0, false},
		{`"NaN"`, 0, false},
		{`"1e30"`, 0, false},
		{`{"n":5}`, 0, false},
	} {
		r := &Request{Metadata: map[string]json.RawMessage{"DequeueCount": json.RawMessage(c.raw)}}
		got, ok := r.MetaInt("DequeueCount")
		if got != c.want || ok != c.wantOK {
			t.Errorf("MetaInt(%s) = %d, %v; want %d, %v", c.raw, got, ok, c.want, c.wantOK)
		}
	}
	if _, ok := (&Request{Metadata: map[string]json.RawMessage{}}).MetaInt("DequeueCount"); ok {
		t.Error("MetaInt of a missing key is ok")
	}
}

func TestMetaTime(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want time.Time
	}{
		{`"2024-05-10T16:13:45+00:00"`, utc(2024, 5, 10, 16, 13, 45)}, // host: no fraction
		{`"2024-05-10T18:13:45+02:00"`, utc(2024, 5, 10, 16, 13, 45)},
		{`"2019-10-09T17:58:32.2205399Z"`, time.Date(2019, 10, 9, 17, 58, 32, 220539900, time.UTC)},
		{`"2024-05-14T15:14:15.128919Z"`, time.Date(2024, 5, 14, 15, 14, 15, 128919000, time.UTC)},
		{`"2024-05-10T16:13:45"`, utc(2024, 5, 10, 16, 13, 45)},
		{`"\"04/06/2024 15:30:00\""`, utc(2024, 4, 6, 15, 30, 0)},
		{`"\"2024-05-10T16:13:45+00:00\""`, utc(2024, 5, 10, 16, 13, 45)},
	} {
		r := &Request{Metadata: map[string]json.RawMessage{"T": json.RawMessage(c.raw)}}
		got, ok := r.MetaTime("T")
		if !ok || !got.Equal(c.want) {
			t.Errorf("MetaTime(%s) = %v, %v; want %v", c.raw, got, ok, c.want)
		}
	}
	for _, raw := range []string{`"yesterday"`, `""`, `null`, `1715357625`, `"2024-13-01T00:00:00Z"`} {
		r := &Request{Metadata: map[string]json.RawMessage{"T": json.RawMessage(raw)}}
		if got, ok := r.MetaTime("T"); ok {
			t.Errorf("MetaTime(%s) = %v, ok; want not ok", raw, got)
		}
	}
}

func TestMetaStringForms(t *testing.T) {
	r := mustDecode(t, `{"Data":{},"Metadata":{"Id":"\"4434c659\"","Plain":"4434c659","Num":7,"Null":null,"Obj":{"a":"b"}}}`)
	for key, want := range map[string]string{"Id": "4434c659", "Plain": "4434c659", "Num": "7", "Null": "", "Absent": ""} {
		if got := r.MetaString(key); got != want {
			t.Errorf("MetaString(%q) = %q, want %q", key, got, want)
		}
	}
	if got := r.MetaString("Obj"); !jsonEqual(t, got, `{"a":"b"}`) {
		t.Errorf("MetaString(Obj) = %q, want the object's JSON", got)
	}
}

func TestHTTPTriggerRealHostForm(t *testing.T) {
	r := mustDecode(t, realHTTPEnvelope)
	req, err := r.HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if req.URL != "http://localhost:7071/api/orders/c-7/o-1001?q=%22exact+phrase%22&tag=a&tag=b" {
		t.Errorf("URL = %q", req.URL)
	}
	if req.Method != "POST" {
		t.Errorf("Method = %q", req.Method)
	}
	// The query value carries its own quotes; they are part of what the caller sent.
	if want := map[string]string{"q": `"exact phrase"`, "tag": "a,b"}; !reflect.DeepEqual(req.Query, want) {
		t.Errorf("Query = %q, want %q", req.Query, want)
	}
	if want := map[string]string{"customerId": "c-7", "id": "o-1001"}; !reflect.DeepEqual(req.Params, want) {
		t.Errorf("Params = %q, want %q", req.Params, want)
	}
	if got := req.Headers["Accept"]; !reflect.DeepEqual(got, []string{"application/json"}) {
		t.Errorf(`Headers["Accept"] = %q`, got)
	}
	for name, want := range map[string]string{
		"content-type":  "application/json; charset=utf-8",
		"CONTENT-TYPE":  "application/json; charset=utf-8",
		"If-None-Match": `"v1"`,
		"host":          "localhost:7071",
		"X-Missing":     "",
	} {
		if got := req.Header(name); got != want {
			t.Errorf("Header(%q) = %q, want %q", name, got, want)
		}
	}
	if req.Body == nil || *req.Body != realHTTPBody {
		t.Errorf("Body = %v, want %q", req.Body, realHTTPBody)
	}
	if len(req.Identities) != 1 {
		t.Fatalf("Identities has %d entries, want 1", len(req.Identities))
	}
	var id struct {
		IsAuthenticated bool
		Claims          []any
		NameClaimType   string
	}
	if err := json.Unmarshal(req.Identities[0], &id); err != nil {
		t.Fatal(err)
	}
	if id.IsAuthenticated || id.Claims == nil || !strings.HasSuffix(id.NameClaimType, "/claims/name") {
		t.Errorf("identity = %+v", id)
	}

	// Metadata: per-key values quoted once more, header values as strings.
	for key, want := range map[string]string{"q": `"exact phrase"`, "tag": "a,b", "customerId": "c-7", "id": "o-1001", "orderId": "o-1001", "total": "42.5"} {
		if got := r.MetaString(key); got != want {
			t.Errorf("MetaString(%q) = %q, want %q", key, got, want)
		}
	}
	var metaHeaders map[string]string
	if err := json.Unmarshal([]byte(r.MetaString("Headers")), &metaHeaders); err != nil {
		t.Fatalf("Metadata.Headers is not an object of strings: %v", err)
	}
	if metaHeaders["If-None-Match"] != `"v1"` {
		t.Errorf("Metadata.Headers[If-None-Match] = %q", metaHeaders["If-None-Match"])
	}
}

func TestHTTPTriggerWithoutBody(t *testing.T) {
	req, err := mustDecode(t, realHTTPGetEnvelope).HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if req.Body != nil {
		t.Errorf("Body = %q for a request without one, want nil", *req.Body)
	}
	if req.Method != "GET" || len(req.Query) != 0 || req.Params["id"] != "o-1001" {
		t.Errorf("request = %+v", req)
	}
	if req.Query == nil || req.Headers == nil || req.Params == nil {
		t.Error("empty collections decode to nil maps")
	}
}

func TestHTTPTriggerOctetStreamBodyStaysBase64(t *testing.T) {
	req, err := mustDecode(t, realHTTPOctetEnvelope).HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if req.Body == nil {
		t.Fatal("Body is nil")
	}
	raw, err := base64.StdEncoding.DecodeString(*req.Body)
	if err != nil {
		t.Fatalf("Body %q is not the host's base64: %v", *req.Body, err)
	}
	if want := []byte{0, 1, 2, 0xff}; !reflect.DeepEqual(raw, want) {
		t.Errorf("decoded body = %x, want %x", raw, want)
	}
	if len(req.Identities) != 0 {
		t.Errorf("Identities = %v, want none", req.Identities)
	}
}

func TestHTTPTriggerDocumentedForm(t *testing.T) {
	req, err := mustDecode(t, docsHTTPEnvelope).HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if req.URL != "http://localhost:7071/api/order" || req.Method != "POST" {
		t.Errorf("URL, Method = %q, %q", req.URL, req.Method)
	}
	if req.Query == nil || len(req.Query) != 0 {
		t.Errorf(`Query = %v for "{}", want empty`, req.Query)
	}
	if req.Header("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", req.Header("Content-Type"))
	}
	if req.Body == nil || *req.Body != `{"id":1005,"quantity":2,"color":"black"}` {
		t.Errorf("Body = %v", req.Body)
	}
}

func TestHTTPTriggerLenientShapes(t *testing.T) {
	body := `{"Data":{"req":{"Url":"http://h/api/x?a=1","Method":"post",` +
		`"Query":"{\"a\":\"1\",\"n\":2}",` +
		`"Headers":{"Content-Type":"application/json","X-Count":3,"X-Null":null,"X-List":["a","b"]},` +
		`"Params":{"id":7,"flag":true,"name":"\"q\"","none":null},` +
		`"Body":{"id":1005}}}}`
	req, err := mustDecode(t, body).HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" {
		t.Errorf("Method = %q, want it upper-cased", req.Method)
	}
	if want := map[string]string{"a": "1", "n": "2"}; !reflect.DeepEqual(req.Query, want) {
		t.Errorf("Query = %q, want %q", req.Query, want)
	}
	if want := map[string][]string{"Content-Type": {"application/json"}, "X-Count": {"3"}, "X-Null": nil, "X-List": {"a", "b"}}; !reflect.DeepEqual(req.Headers, want) {
		t.Errorf("Headers = %q, want %q", req.Headers, want)
	}
	if want := map[string]string{"id": "7", "flag": "true", "name": `"q"`, "none": ""}; !reflect.DeepEqual(req.Params, want) {
		t.Errorf("Params = %q, want %q", req.Params, want)
	}
	if req.Body == nil || !jsonEqual(t, *req.Body, `{"id":1005}`) {
		t.Errorf("Body = %v, want the object's JSON", req.Body)
	}

	nulls, err := mustDecode(t, `{"Data":{"req":{"Url":"u","Method":"GET","Query":null,"Headers":null,"Params":null,"Body":null}}}`).HTTPTrigger("req")
	if err != nil {
		t.Fatal(err)
	}
	if nulls.Body != nil || nulls.Query == nil || nulls.Headers == nil || nulls.Params == nil {
		t.Errorf("null members: %+v", nulls)
	}
}

func TestHTTPTriggerErrors(t *testing.T) {
	r := mustDecode(t, `{"Data":{"req":"\"not an object\"","nul":null,"badQuery":{"Query":5},"badHeaders":{"Headers":[]},"badQueryText":{"Query":"not json"}}}`)
	for _, name := range []string{"absent", "nul"} {
		if _, err := r.HTTPTrigger(name); !errors.Is(err, ErrMissingBinding) {
			t.Errorf("HTTPTrigger(%q) error = %v, want ErrMissingBinding", name, err)
		}
	}
	for _, name := range []string{"req", "badQuery", "badHeaders", "badQueryText"} {
		if got, err := r.HTTPTrigger(name); err == nil || errors.Is(err, ErrMissingBinding) {
			t.Errorf("HTTPTrigger(%q) = %+v, %v; want a decoding error", name, got, err)
		}
	}
}
