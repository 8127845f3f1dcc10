package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

const validOrder = `{"id":"order-1","customerId":"cust-1","items":[{"sku":"SKU-1","quantity":2},{"sku":"SKU-2","quantity":1}],"note":"leave at door"}`

// parseErr parses data and returns the FieldError it must fail with.
func parseErr(t *testing.T, data string, opts ParseOptions) *FieldError {
	t.Helper()
	o, err := Parse([]byte(data), opts)
	if err == nil {
		t.Fatalf("Parse(%.80q) = %+v, want an error", data, o)
	}
	if o != nil {
		t.Errorf("Parse(%.80q) returned an order alongside error %v", data, err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("Parse(%.80q) error %T %v is not a *FieldError", data, err, err)
	}
	return fe
}

func TestParseValid(t *testing.T) {
	o, err := Parse([]byte(validOrder), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if o.ID != "order-1" || o.CustomerID != "cust-1" {
		t.Errorf("ID, CustomerID = %q, %q; want order-1, cust-1", o.ID, o.CustomerID)
	}
	want := []Item{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-2", Quantity: 1}}
	if len(o.Items) != len(want) {
		t.Fatalf("Items = %+v, want %+v", o.Items, want)
	}
	for i := range want {
		if o.Items[i] != want[i] {
			t.Errorf("Items[%d] = %+v, want %+v", i, o.Items[i], want[i])
		}
	}
	// Unknown members survive as sent.
	if got := string(o.Fields["note"]); got != `"leave at door"` {
		t.Errorf(`Fields["note"] = %s, want "leave at door"`, got)
	}
	for _, k := range []string{"id", "customerId", "items", "note"} {
		if _, ok := o.Fields[k]; !ok {
			t.Errorf("Fields lacks %q", k)
		}
	}
	if len(o.Fields) != 4 {
		t.Errorf("Fields has %d members, want 4: %v", len(o.Fields), o.Fields)
	}
}

func TestParseValidVariants(t *testing.T) {
	cases := map[string]struct {
		body string
		qty  int
	}{
		"exponent quantity":      {`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1e2}]}`, 100},
		"decimal whole quantity": {`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":3.0}]}`, 3},
		"max quantity":           {fmt.Sprintf(`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":%d}]}`, MaxQuantity), MaxQuantity},
		"white space around":     {" \n\t{ \"id\" : \"a\" , \"customerId\":\"c\", \"items\" : [ {\"sku\":\"s\",\"quantity\":1} ] }\n ", 1},
		"escaped key and value":  {`{"\u0069d":"\u0061","customerId":"c","items":[{"sku":"s","quantity":1}]}`, 1},
		"extra item members":     {`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1,"gift":true}]}`, 1},
		"nested underscore ok":   {`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}],"meta":{"_x":1}}`, 1},
		"unicode key":            {`{"id":"zamówienie-ü-😀","customerId":"c","items":[{"sku":"s","quantity":1}]}`, 1},
		"inner spaces in key":    {`{"id":"order one","customerId":"c","items":[{"sku":"s","quantity":1}]}`, 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, err := Parse([]byte(tc.body), ParseOptions{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(o.Items) != 1 || o.Items[0].Quantity != tc.qty {
				t.Errorf("Items = %+v, want one item of quantity %d", o.Items, tc.qty)
			}
			if err := CheckKey(o.ID); err != nil {
				t.Errorf("accepted id %q fails CheckKey: %v", o.ID, err)
			}
		})
	}
}

func TestParseIDAssignment(t *testing.T) {
	const noID = `{"customerId":"c","items":[{"sku":"s","quantity":1}]}`
	const nullID = `{"id":null,"customerId":"c","items":[{"sku":"s","quantity":1}]}`

	t.Run("missing id refused without AssignID", func(t *testing.T) {
		for _, body := range []string{noID, nullID} {
			fe := parseErr(t, body, ParseOptions{})
			if fe.Field != "id" || !strings.Contains(fe.Reason, "required") {
				t.Errorf("error = %+v, want id: is required", fe)
			}
		}
	})
	t.Run("missing id assigned with AssignID", func(t *testing.T) {
		seen := map[string]bool{}
		for _, body := range []string{noID, nullID, noID} {
			o, err := Parse([]byte(body), ParseOptions{AssignID: true})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := uuid.Parse(o.ID); err != nil {
				t.Errorf("assigned id %q is not a UUID: %v", o.ID, err)
			}
			if err := CheckKey(o.ID); err != nil {
				t.Errorf("assigned id %q fails CheckKey: %v", o.ID, err)
			}
			if seen[o.ID] {
				t.Errorf("id %q assigned twice", o.ID)
			}
			seen[o.ID] = true
			// The stored document carries the assigned id.
			var id string
			if err := json.Unmarshal(o.Fields["id"], &id); err != nil || id != o.ID {
				t.Errorf(`Fields["id"] = %s, want %q`, o.Fields["id"], o.ID)
			}
			var doc map[string]any
			if err := json.Unmarshal(o.Canonical(), &doc); err != nil || doc["id"] != o.ID {
				t.Errorf("Canonical() = %s, want id %q", o.Canonical(), o.ID)
			}
		}
	})
	t.Run("given id kept with AssignID", func(t *testing.T) {
		o, err := Parse([]byte(validOrder), ParseOptions{AssignID: true})
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if o.ID != "order-1" {
			t.Errorf("ID = %q, want order-1", o.ID)
		}
	})
	t.Run("empty id refused in both modes", func(t *testing.T) {
		body := `{"id":"","customerId":"c","items":[{"sku":"s","quantity":1}]}`
		fe := parseErr(t, body, ParseOptions{})
		if fe.Field != "id" || !strings.Contains(fe.Reason, "empty") {
			t.Errorf("without AssignID: %+v, want id: must not be empty", fe)
		}
		fe = parseErr(t, body, ParseOptions{AssignID: true})
		if fe.Field != "id" || !strings.Contains(fe.Reason, "leave it out") {
			t.Errorf("with AssignID: %+v, want a hint to leave the id out", fe)
		}
	})
}

func TestParseCustomerIDRequired(t *testing.T) {
	for name, body := range map[string]string{
		"missing": `{"id":"a","items":[{"sku":"s","quantity":1}]}`,
		"null":    `{"id":"a","customerId":null,"items":[{"sku":"s","quantity":1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			for _, opts := range []ParseOptions{{}, {AssignID: true}} {
				fe := parseErr(t, body, opts)
				if fe.Field != "customerId" || !strings.Contains(fe.Reason, "required") {
					t.Errorf("AssignID=%v: %+v, want customerId: is required", opts.AssignID, fe)
				}
			}
		})
	}
	fe := parseErr(t, `{"id":"a","customerId":"","items":[{"sku":"s","quantity":1}]}`, ParseOptions{AssignID: true})
	if fe.Field != "customerId" || !strings.Contains(fe.Reason, "empty") {
		t.Errorf("empty customerId: %+v, want customerId: must not be empty", fe)
	}
}

func TestParseFieldErrors(t *testing.T) {
	item := `{"sku":"s","quantity":1}`
	items := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	withItems := func(raw string) string { return `{"id":"a","customerId":"c","items":` + raw + `}` }
	cases := []struct {
		name, body, field, reason string
	}{
		{"id number", `{"id":1,"customerId":"c","items":[` + item + `]}`, "id", "must be a string"},
		{"id object", `{"id":{},"customerId":"c","items":[` + item + `]}`, "id", "must be a string"},
		{"id bool", `{"id":true,"customerId":"c","items":[` + item + `]}`, "id", "must be a string"},
		{"customerId array", `{"id":"a","customerId":["c"],"items":[` + item + `]}`, "customerId", "must be a string"},
		{"customerId number", `{"id":"a","customerId":7,"items":[` + item + `]}`, "customerId", "must be a string"},
		{"items missing", `{"id":"a","customerId":"c"}`, "items", "is required"},
		{"items null", withItems(`null`), "items", "is required"},
		{"items object", withItems(`{"sku":"s"}`), "items", "must be an array"},
		{"items string", withItems(`"x"`), "items", "must be an array"},
		{"items empty", withItems(`[]`), "items", "at least one"},
		{"items too many", withItems(items(MaxItems + 1)), "items", fmt.Sprintf("at most %d", MaxItems)},
		{"item not object", withItems(`[` + item + `,3]`), "items[1]", "must be an object"},
		{"item null", withItems(`[null]`), "items[0]", "must be an object"},
		{"sku missing", withItems(`[{"quantity":1}]`), "items[0].sku", "is required"},
		{"sku null", withItems(`[{"sku":null,"quantity":1}]`), "items[0].sku", "is required"},
		{"sku number", withItems(`[{"sku":5,"quantity":1}]`), "items[0].sku", "must be a string"},
		{"sku blank", withItems(`[{"sku":"  ","quantity":1}]`), "items[0].sku", "not blank"},
		{"sku empty", withItems(`[{"sku":"","quantity":1}]`), "items[0].sku", "not blank"},
		{"sku too long", withItems(`[{"sku":"` + strings.Repeat("x", MaxSKULength+1) + `","quantity":1}]`), "items[0].sku", "1 to"},
		{"quantity missing", withItems(`[{"sku":"s"}]`), "items[0].quantity", "is required"},
		{"quantity null", withItems(`[` + item + `,{"sku":"s","quantity":null}]`), "items[1].quantity", "is required"},
		{"quantity string", withItems(`[{"sku":"s","quantity":"5"}]`), "items[0].quantity", "whole number"},
		{"quantity bool", withItems(`[{"sku":"s","quantity":true}]`), "items[0].quantity", "whole number"},
		{"quantity array", withItems(`[{"sku":"s","quantity":[1]}]`), "items[0].quantity", "whole number"},
		{"quantity fraction", withItems(`[{"sku":"s","quantity":1.5}]`), "items[0].quantity", "whole number"},
		{"quantity zero", withItems(`[{"sku":"s","quantity":0}]`), "items[0].quantity", "from 1"},
		{"quantity negative", withItems(`[{"sku":"s","quantity":-1}]`), "items[0].quantity", "from 1"},
		{"quantity too big", withItems(fmt.Sprintf(`[{"sku":"s","quantity":%d}]`, MaxQuantity+1)), "items[0].quantity", "from 1"},
		{"quantity overflow", withItems(`[{"sku":"s","quantity":1e400}]`), "items[0].quantity", "whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := parseErr(t, tc.body, ParseOptions{AssignID: true})
			if fe.Field != tc.field {
				t.Errorf("Field = %q, want %q (error %v)", fe.Field, tc.field, fe)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", fe.Reason, tc.reason)
			}
			if !strings.HasPrefix(fe.Error(), tc.field+": ") {
				t.Errorf("Error() = %q, want it to start with the field name %q", fe.Error(), tc.field)
			}
		})
	}
}

func TestParseBodyErrors(t *testing.T) {
	cases := []struct{ name, body, reason string }{
		{"empty", ``, "JSON"},
		{"array", `[]`, "must be a JSON object"},
		{"string", `"x"`, "must be a JSON object"},
		{"number", `1`, "must be a JSON object"},
		{"null", `null`, "must be a JSON object"},
		{"truncated", `{"id":"a"`, "JSON"},
		{"syntax", `{"id" "a"}`, "not valid JSON"},
		{"trailing object", validOrder + `{}`, "data after"},
		{"trailing value", validOrder + ` 1`, "data after"},
		{"trailing junk", validOrder + `x`, "not valid JSON"},
		{"invalid utf-8", "{\"id\":\"a\xff\",\"customerId\":\"c\",\"items\":[]}", "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := parseErr(t, tc.body, ParseOptions{AssignID: true})
			if fe.Field != "" {
				t.Errorf("Field = %q, want none for a body-level error", fe.Field)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", fe.Reason, tc.reason)
			}
			if fe.Error() != fe.Reason {
				t.Errorf("Error() = %q, want the bare reason %q", fe.Error(), fe.Reason)
			}
		})
	}
}

func TestParseKeyRejections(t *testing.T) {
	bad := map[string]string{
		"slash":             "a/b",
		"backslash":         `a\b`,
		"question mark":     "a?b",
		"hash":              "a#b",
		"leading space":     " a",
		"trailing space":    "a ",
		"trailing tab":      "a\t",
		"leading newline":   "\na",
		"only spaces":       "   ",
		"NUL":               "a\x00b",
		"inner newline":     "a\nb",
		"inner tab":         "a\tb",
		"DEL":               "a\x7fb",
		"C1 control":        "a\u0085b",
		"unicode space end": "a\u00a0",
		"replacement char":  "a\ufffdb",
		"too long":          strings.Repeat("k", MaxIDLength+1),
		"too long in bytes": strings.Repeat("é", MaxIDLength/2+1), // 2 bytes per rune
	}
	for name, key := range bad {
		t.Run(name, func(t *testing.T) {
			if err := CheckKey(key); err == nil {
				t.Fatalf("CheckKey(%q) = nil, want an error", key)
			}
			enc, _ := json.Marshal(key)
			for _, field := range []string{"id", "customerId"} {
				doc := map[string]json.RawMessage{
					"id": json.RawMessage(`"a"`), "customerId": json.RawMessage(`"c"`),
					"items": json.RawMessage(`[{"sku":"s","quantity":1}]`),
				}
				doc[field] = enc
				body, _ := json.Marshal(doc)
				fe := parseErr(t, string(body), ParseOptions{AssignID: true})
				if fe.Field != field {
					t.Errorf("%s=%q: Field = %q, want %q (%v)", field, key, fe.Field, field, fe)
				}
			}
		})
	}
	// A lone surrogate escape decodes to U+FFFD, which must be refused too.
	fe := parseErr(t, `{"id":"a\ud800b","customerId":"c","items":[{"sku":"s","quantity":1}]}`, ParseOptions{})
	if fe.Field != "id" {
		t.Errorf("lone surrogate: Field = %q, want id", fe.Field)
	}
}

func TestCheckKeyReasons(t *testing.T) {
	cases := map[string]string{
		"":                                 "empty",
		strings.Repeat("x", MaxIDLength+1): fmt.Sprint(MaxIDLength),
		" x":                               "white space",
		"x/y":                              "'/'",
		"x\x01y":                           "control",
	}
	for key, want := range cases {
		err := CheckKey(key)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckKey(%.20q) = %v, want an error mentioning %q", key, err, want)
		}
	}
	for _, ok := range []string{"a", strings.Repeat("k", MaxIDLength), "a b", "ünïcödé", "a-b_c.d:e@f", "😀"} {
		if err := CheckKey(ok); err != nil {
			t.Errorf("CheckKey(%.20q) = %v, want nil", ok, err)
		}
	}
}

func TestParseDuplicateMembers(t *testing.T) {
	cases := []struct{ name, body, field string }{
		{"top-level id", `{"id":"a","id":"b","customerId":"c","items":[{"sku":"s","quantity":1}]}`, "id"},
		{"top-level customerId", `{"id":"a","customerId":"c","customerId":"d","items":[{"sku":"s","quantity":1}]}`, "customerId"},
		{"escaped duplicate", `{"id":"a","\u0069d":"b","customerId":"c","items":[{"sku":"s","quantity":1}]}`, "id"},
		{"unknown member", `{"id":"a","customerId":"c","x":1,"x":2,"items":[{"sku":"s","quantity":1}]}`, "x"},
		{"inside an item", `{"id":"a","customerId":"c","items":[{"sku":"s","sku":"t","quantity":1}]}`, ""},
		{"nested object", `{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}],"m":{"k":1,"k":2}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := parseErr(t, tc.body, ParseOptions{})
			if fe.Field != tc.field {
				t.Errorf("Field = %q, want %q", fe.Field, tc.field)
			}
			if !strings.Contains(fe.Reason, "more than once") {
				t.Errorf("Reason = %q, want a duplicate-member reason", fe.Reason)
			}
		})
	}
	// The same name in sibling objects is not a duplicate.
	body := `{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1},{"sku":"t","quantity":2}],"m":{"id":1}}`
	if _, err := Parse([]byte(body), ParseOptions{}); err != nil {
		t.Errorf("same names in sibling objects: %v", err)
	}
}

// nested returns an order whose member "n" holds a value nested so that the deepest
// container sits at the given depth, counting the order object itself as depth 1.
func nested(depth int, objects bool) string {
	var inner string
	if objects {
		inner = strings.Repeat(`{"k":`, depth-1) + "1" + strings.Repeat("}", depth-1)
	} else {
		inner = strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1)
	}
	return `{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}],"n":` + inner + `}`
}

func TestParseDepth(t *testing.T) {
	for _, objects := range []bool{false, true} {
		t.Run(fmt.Sprintf("objects=%v", objects), func(t *testing.T) {
			if _, err := Parse([]byte(nested(MaxDepth, objects)), ParseOptions{}); err != nil {
				t.Errorf("depth %d: %v", MaxDepth, err)
			}
			for _, depth := range []int{MaxDepth + 1, 100000} {
				fe := parseErr(t, nested(depth, objects), ParseOptions{})
				if fe.Field != "" || !strings.Contains(fe.Reason, fmt.Sprintf("deeper than %d", MaxDepth)) {
					t.Errorf("depth %d: %v, want a nesting error", depth, fe)
				}
			}
		})
	}
}

func TestParseReservedNames(t *testing.T) {
	for _, name := range []string{"_rid", "_etag", "_ts", "_self", "_attachments", "_redelivery", "_"} {
		body := `{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}],"` + name + `":1}`
		fe := parseErr(t, body, ParseOptions{AssignID: true})
		if fe.Field != name || !strings.Contains(fe.Reason, "reserved") {
			t.Errorf("%s: %+v, want %s: reserved", name, fe, name)
		}
	}
}

func TestFieldErrorMessage(t *testing.T) {
	if got := (&FieldError{Field: "items[2].sku", Reason: "is required"}).Error(); got != "items[2].sku: is required" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&FieldError{Reason: "body must be a JSON object"}).Error(); got != "body must be a JSON object" {
		t.Errorf("Error() = %q", got)
	}
}

func TestCanonicalIgnoresSpacingAndMemberOrder(t *testing.T) {
	variants := []string{
		`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":2}],"note":{"x":[1, 2]},"tag":"t"}`,
		`{"tag":"t","note":{"x":[1,2]},"items":[{"sku":"s","quantity":2}],"customerId":"c","id":"a"}`,
		"{\n  \"customerId\" : \"c\",\n  \"tag\": \"t\",\n  \"id\": \"a\",\n  \"items\": [ { \"sku\": \"s\", \"quantity\": 2 } ],\n  \"note\": { \"x\": [ 1,\t2 ] }\n}\n",
	}
	var first *Order
	for i, v := range variants {
		o, err := Parse([]byte(v), ParseOptions{})
		if err != nil {
			t.Fatalf("variant %d: %v", i, err)
		}
		c := o.Canonical()
		if !json.Valid(c) {
			t.Fatalf("variant %d: Canonical() = %s is not valid JSON", i, c)
		}
		if bytes.ContainsAny(c, " \n\t") {
			t.Errorf("variant %d: Canonical() = %s is not compact", i, c)
		}
		if first == nil {
			first = o
			continue
		}
		if !bytes.Equal(c, first.Canonical()) {
			t.Errorf("variant %d: Canonical() = %s, want %s", i, c, first.Canonical())
		}
		if o.Hash() != first.Hash() {
			t.Errorf("variant %d: Hash() = %s, want %s", i, o.Hash(), first.Hash())
		}
	}
	// Members come out sorted, nested objects' members too.
	want := `{"customerId":"c","id":"a","items":[{"quantity":2,"sku":"s"}],"note":{"x":[1,2]},"tag":"t"}`
	if got := string(first.Canonical()); got != want {
		t.Errorf("Canonical() = %s, want %s", got, want)
	}
}

func TestCanonicalIsStable(t *testing.T) {
	o, err := Parse([]byte(`{"id":"a","customerId":"c","items":[{"sku":"<s&>","quantity":1}],"m":"\u00e9\n"}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1, h1 := o.Canonical(), o.Hash()
	for i := 0; i < 5; i++ {
		if c := o.Canonical(); !bytes.Equal(c, c1) {
			t.Fatalf("Canonical() changed between calls: %s vs %s", c, c1)
		}
	}
	if len(h1) != 64 || strings.Trim(h1, "0123456789abcdef") != "" {
		t.Errorf("Hash() = %q, want 64 lower-case hex digits", h1)
	}
	// Parsing the canonical form gives the same canonical form: it is a fixed point.
	o2, err := Parse(c1, ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(Canonical()): %v", err)
	}
	if c2 := o2.Canonical(); !bytes.Equal(c2, c1) {
		t.Errorf("Canonical(Parse(Canonical())) = %s, want %s", c2, c1)
	}
	if o2.Hash() != h1 {
		t.Errorf("Hash changed after a round trip")
	}
}

func TestHashTellsContentApart(t *testing.T) {
	base := `{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}]}`
	others := []string{
		`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":2}]}`,
		`{"id":"a","customerId":"d","items":[{"sku":"s","quantity":1}]}`,
		`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1}],"note":null}`,
		`{"id":"b","customerId":"c","items":[{"sku":"s","quantity":1}]}`,
	}
	o, err := Parse([]byte(base), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range others {
		p, err := Parse([]byte(other), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Hash() == o.Hash() {
			t.Errorf("%s and %s hash alike", base, other)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		validOrder,
		`{"customerId":"c","items":[{"sku":"s","quantity":1}]}`,
		`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":1e2}],"m":{"k":[1,{"z":null}]}}`,
		`{"id":"a","id":"b"}`,
		`{"id":"a/b","customerId":"c","items":[]}`,
		`{"_rid":1}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
		`{"id":"\ud800","customerId":" c","items":[{"sku":"s","quantity":"1"}]}`,
		`{} {}`,
		``,
		"\xff",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, assign bool) {
		o, err := Parse(data, ParseOptions{AssignID: assign})
		if err != nil {
			if o != nil {
				t.Fatalf("Parse returned an order with error %v", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FieldError", err, err)
			}
			return
		}
		if err := CheckKey(o.ID); err != nil {
			t.Fatalf("accepted id %q: %v", o.ID, err)
		}
		if err := CheckKey(o.CustomerID); err != nil {
			t.Fatalf("accepted customerId %q: %v", o.CustomerID, err)
		}
		if len(o.Items) == 0 || len(o.Items) > MaxItems {
			t.Fatalf("accepted %d items", len(o.Items))
		}
		for i, it := range o.Items {
			if it.Quantity < 1 || it.Quantity > MaxQuantity || strings.TrimSpace(it.SKU) == "" || len(it.SKU) > MaxSKULength {
				t.Fatalf("accepted item %d: %+v", i, it)
			}
		}
		for k := range o.Fields {
			if strings.HasPrefix(k, "_") {
				t.Fatalf("accepted reserved member %q", k)
			}
		}
		c := o.Canonical()
		if !json.Valid(c) {
			t.Fatalf("Canonical() = %q is not valid JSON", c)
		}
		if !bytes.Equal(c, o.Canonical()) {
			t.Fatalf("Canonical() is not stable")
		}
		// Idempotent: the canonical form parses to an order with the same identity and
		// the same canonical form.
		o2, err := Parse(c, ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(Canonical()=%q): %v", c, err)
		}
		if o2.ID != o.ID || o2.CustomerID != o.CustomerID || len(o2.Items) != len(o.Items) {
			t.Fatalf("round trip changed the order: %+v vs %+v", o2, o)
		}
		if c2 := o2.Canonical(); !bytes.Equal(c2, c) {
			t.Fatalf("Canonical is not idempotent:\n%s\n%s", c, c2)
		}
		if o2.Hash() != o.Hash() {
			t.Fatalf("Hash changed on round trip")
		}
	})
}

// TestHashIgnoresNestedMemberOrder: two clients that serialise the same order with the
// members of its items in another order send the same content, so a redelivery from
// either is a duplicate, not a conflicting order.
func TestHashIgnoresNestedMemberOrder(t *testing.T) {
	a, err := Parse([]byte(`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":2}],"ship":{"to":"x","by":"y"}}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(`{"customerId":"c","ship":{"by":"y","to":"x"},"items":[{"quantity":2,"sku":"s"}],"id":"a"}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() {
		t.Errorf("hashes differ for the same order with nested members reordered:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	c, err := Parse([]byte(`{"id":"a","customerId":"c","items":[{"sku":"s","quantity":3}],"ship":{"to":"x","by":"y"}}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() == c.Hash() {
		t.Error("a different quantity gives the same hash")
	}
}

// TestParseRefusesTheHashMember: the store keeps its content hash under this name beside
// the order, so a client's own member would silently be overwritten and then dropped.
func TestParseRefusesTheHashMember(t *testing.T) {
	_, err := Parse([]byte(`{"id":"a","customerId":"c","items":[],"contentHash":"mine"}`), ParseOptions{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != ReservedHashField {
		t.Fatalf("Parse = %v, want a FieldError naming %s", err, ReservedHashField)
	}
}

func TestParseNullItemNamesTheItem(t *testing.T) {
	_, err := Parse([]byte(`{"id":"a","customerId":"c","items":[null]}`), ParseOptions{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "items[0]" {
		t.Fatalf("Parse = %v, want a FieldError naming items[0]", err)
	}
}
