package invocation

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequest feeds arbitrary bytes to the envelope decoder and every accessor a
// function uses. None may panic; an accepted envelope must be a JSON object; and
// re-encoding what was accepted and decoding it again must give the same values through
// every accessor, so nothing the decoder keeps depends on how the host laid the bytes out.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		realQueueEnvelope, realQueueHelloEnvelope, docsQueueEnvelope, docsQueueObjectEnvelope,
		realHTTPEnvelope, realHTTPGetEnvelope, realHTTPOctetEnvelope, docsHTTPEnvelope,
		`{"Data":{}}`, `{"data":{"a":null},"metadata":null}`, `{"Data":{}}}`, `{"Data":{}} x`,
		`{"Data":{"req":{"Query":"{\"a\":[1]}","Headers":{"h":[1,"2"]},"Params":{"p":{"q":1}},"Body":7}}}`,
		`{"Data":{"m":"\"\\\"\""},"Metadata":{"DequeueCount":"1e3","T":"\"01/02/2006 15:04:05\""}}`,
		`{"Data":{"a":"\xff"},"Metadata":{"Id":"\"\xfe\""}}`,
		`{"Data":{"a":1},"data":{"b":2}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			if req != nil {
				t.Fatalf("returned a request alongside error %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if req.Data == nil || req.Metadata == nil {
			t.Fatalf("accepted envelope has Data %v, Metadata %v", req.Data, req.Metadata)
		}

		encoded, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted envelope cannot be re-encoded: %v", err)
		}
		again, err := DecodeRequest(encoded)
		if err != nil {
			t.Fatalf("re-encoded envelope %s rejected: %v", encoded, err)
		}
		sameMembers(t, "Data", req.Data, again.Data)
		sameMembers(t, "Metadata", req.Metadata, again.Metadata)

		for name, v := range req.Data {
			text, err := Text(v)
			text2, err2 := Text(again.Data[name])
			if (err == nil) != (err2 == nil) || (err == nil && !sameText(text, text2)) {
				t.Fatalf("Text(Data[%q]) = %q, %v; after re-encoding %q, %v", name, text, err, text2, err2)
			}
			// Whatever text a binding carries, the host's double encoding of it must
			// read back as the same text.
			if err == nil && utf8.ValidString(text) {
				if back, err := Text(hostEncode(t, text)); err != nil || back != text {
					t.Fatalf("Text(host(%q)) = %q, %v", text, back, err)
				}
			}

			q, qerr := req.QueueTrigger(name)
			q2, qerr2 := again.QueueTrigger(name)
			if (qerr == nil) != (qerr2 == nil) {
				t.Fatalf("QueueTrigger(%q) error %v, after re-encoding %v", name, qerr, qerr2)
			}
			if qerr == nil {
				if !sameText(q.Text, q2.Text) {
					t.Fatalf("QueueTrigger(%q).Text = %q, after re-encoding %q", name, q.Text, q2.Text)
				}
				q.Text, q2.Text = "", ""
				if !reflect.DeepEqual(q, q2) {
					t.Fatalf("QueueTrigger(%q) = %+v, after re-encoding %+v", name, q, q2)
				}
			}

			h, herr := req.HTTPTrigger(name)
			h2, herr2 := again.HTTPTrigger(name)
			if (herr == nil) != (herr2 == nil) {
				t.Fatalf("HTTPTrigger(%q) error %v, after re-encoding %v", name, herr, herr2)
			}
			if herr == nil {
				sameHTTPRequest(t, h, h2)
				_ = h.Header("Content-Type")
				_, _ = JSONBody(h, 1<<20)
			}
		}
		for key := range req.Metadata {
			if a, b := req.MetaString(key), again.MetaString(key); !sameText(a, b) {
				t.Fatalf("MetaString(%q) = %q, after re-encoding %q", key, a, b)
			}
			n, ok := req.MetaInt(key)
			n2, ok2 := again.MetaInt(key)
			if n != n2 || ok != ok2 {
				t.Fatalf("MetaInt(%q) = %d, %v; after re-encoding %d, %v", key, n, ok, n2, ok2)
			}
			tm, ok := req.MetaTime(key)
			tm2, ok2 := again.MetaTime(key)
			if !tm.Equal(tm2) || ok != ok2 {
				t.Fatalf("MetaTime(%q) = %v, %v; after re-encoding %v, %v", key, tm, ok, tm2, ok2)
			}
		}
	})
}

// sameMembers reports a difference between two decodings of the same members. Re-encoding
// may change whitespace and escapes, never the values.
func sameMembers(t *testing.T, what string, a, b map[string]json.RawMessage) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s has %d members, after re-encoding %d", what, len(a), len(b))
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			t.Fatalf("%s[%q] lost in re-encoding", what, k)
		}
		if !sameJSON(va, vb) {
			t.Fatalf("%s[%q] = %s, after re-encoding %s", what, k, va, vb)
		}
	}
}

func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// sameText compares texts that may be raw JSON the accessors pass through (an object
// message, a non-string query value), whose layout re-encoding may change.
func sameText(a, b string) bool {
	return a == b || (json.Valid([]byte(a)) && sameJSON([]byte(a), []byte(b)))
}

func sameHTTPRequest(t *testing.T, a, b *HTTPRequest) {
	t.Helper()
	if a.URL != b.URL || a.Method != b.Method {
		t.Fatalf("URL, Method = %q, %q; after re-encoding %q, %q", a.URL, a.Method, b.URL, b.Method)
	}
	sameStrings := func(what string, x, y map[string]string) {
		if len(x) != len(y) {
			t.Fatalf("%s = %q, after re-encoding %q", what, x, y)
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameText(v, w) {
				t.Fatalf("%s[%q] = %q, after re-encoding %q", what, k, v, y[k])
			}
		}
	}
	sameStrings("Query", a.Query, b.Query)
	sameStrings("Params", a.Params, b.Params)
	if len(a.Headers) != len(b.Headers) {
		t.Fatalf("Headers = %q, after re-encoding %q", a.Headers, b.Headers)
	}
	for k, vs := range a.Headers {
		ws := b.Headers[k]
		if len(vs) != len(ws) {
			t.Fatalf("Headers[%q] = %q, after re-encoding %q", k, vs, ws)
		}
		for i := range vs {
			if !sameText(vs[i], ws[i]) {
				t.Fatalf("Headers[%q] = %q, after re-encoding %q", k, vs, ws)
			}
		}
	}
	if (a.Body == nil) != (b.Body == nil) || (a.Body != nil && !sameText(*a.Body, *b.Body)) {
		t.Fatalf("Body = %v, after re-encoding %v", a.Body, b.Body)
	}
	if len(a.Identities) != len(b.Identities) {
		t.Fatalf("%d identities, after re-encoding %d", len(a.Identities), len(b.Identities))
	}
}
