// Package order is the domain of the sample pipeline: what an order is, which orders are
// valid, and the document stored for one. Validation is strict about the fields the store
// depends on (id and customerId end up in URLs and in the partition key) and keeps every
// other field as the client sent it.
package order

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of a valid order.
const (
	MaxIDLength  = 255 // Cosmos DB's limit for an item id
	MaxItems     = 100
	MaxSKULength = 100
	MaxQuantity  = 10000
	MaxDepth     = 32
)

// Order is a validated order. Fields holds every top-level member as sent (id,
// customerId and items included), so fields this code does not know survive the trip to
// the store unchanged.
type Order struct {
	ID         string
	CustomerID string
	Items      []Item
	Fields     map[string]json.RawMessage
}

// Item is one line of an order.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// FieldError names the member of the input at fault. Handlers turn it into a 400 problem
// document, and the queue path into a poison message with the same reason.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// ParseOptions changes how Parse treats a missing id.
type ParseOptions struct {
	// AssignID gives an order without an id a new random one, as ingest does. Without it,
	// a missing id is an error: the queue path must not invent ids, or a redelivered
	// message would be stored twice.
	AssignID bool
}

// ReservedHashField is the member the store keeps an order's content hash in, beside the
// order; a client's own member of that name would be overwritten, so it is refused.
const ReservedHashField = "contentHash"

// Parse validates data as an order.
func Parse(data []byte, opts ParseOptions) (*Order, error) {
	if !utf8.Valid(data) {
		return nil, &FieldError{Reason: "body is not valid UTF-8"}
	}
	if err := CheckShape(data); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, &FieldError{Reason: "body must be a JSON object"}
	}
	for k := range fields {
		if strings.HasPrefix(k, "_") {
			return nil, &FieldError{Field: k, Reason: "names starting with an underscore are reserved for the store"}
		}
		if k == ReservedHashField {
			return nil, &FieldError{Field: k, Reason: "is reserved: the store keeps the order's content hash under this name"}
		}
	}
	o := &Order{Fields: fields}

	var err error
	if o.CustomerID, err = stringField(fields, "customerId", true); err != nil {
		return nil, err
	}
	if o.ID, err = stringField(fields, "id", !opts.AssignID); err != nil {
		return nil, err
	}
	if o.ID == "" {
		o.ID = uuid.NewString()
		fields["id"], _ = json.Marshal(o.ID)
	}
	raw, ok := fields["items"]
	if !ok || isNull(raw) {
		return nil, &FieldError{Field: "items", Reason: "is required"}
	}
	if o.Items, err = parseItems(raw); err != nil {
		return nil, err
	}
	for k, v := range fields {
		if hasOverflow(v) {
			return nil, &FieldError{Field: k, Reason: "holds a number too large for a double; the store cannot keep it as sent"}
		}
	}
	return o, nil
}

// hasOverflow reports whether raw holds a number beyond ±1.8e308. JSON allows it; the
// store reads numbers as doubles, so it would refuse such an order after the client was
// told it was accepted, or keep something else in its place.
func hasOverflow(raw json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return true
			}
		}
	}
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func stringField(fields map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		if required {
			return "", &FieldError{Field: name, Reason: "is required"}
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{Field: name, Reason: "must be a string"}
	}
	if err := CheckKey(s); err != nil {
		if s == "" && !required {
			return "", &FieldError{Field: name, Reason: "must not be empty; leave it out to have one assigned"}
		}
		return "", &FieldError{Field: name, Reason: err.Error()}
	}
	return s, nil
}

// CheckKey validates a value used as an item id or partition key. Cosmos DB cannot
// address an id holding '/', '\', '?' or '#' through its REST paths, so such an item
// could be written but never read back, and "." and ".." are path steps to any URL;
// control characters and surrounding spaces are refused because they do not survive
// URLs and logs intact.
func CheckKey(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > MaxIDLength:
		return fmt.Errorf("must be at most %d bytes", MaxIDLength)
	case strings.TrimSpace(s) != s:
		return errors.New("must not start or end with white space")
	case strings.ContainsAny(s, `/\?#`):
		return errors.New(`must not contain '/', '\', '?' or '#'`)
	case s == "." || s == "..":
		// URLs read these as path steps, so /docs/.. would address the container itself.
		return errors.New("must not be '.' or '..'")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

func parseItems(raw json.RawMessage) ([]Item, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, &FieldError{Field: "items", Reason: "must be an array"}
	}
	if len(list) == 0 {
		return nil, &FieldError{Field: "items", Reason: "must hold at least one item"}
	}
	if len(list) > MaxItems {
		return nil, &FieldError{Field: "items", Reason: fmt.Sprintf("must hold at most %d items", MaxItems)}
	}
	items := make([]Item, len(list))
	for i, r := range list {
		field := fmt.Sprintf("items[%d]", i)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r, &m); err != nil || m == nil { // null decodes to a nil map
			return nil, &FieldError{Field: field, Reason: "must be an object"}
		}
		sr, ok := m["sku"]
		if !ok || isNull(sr) {
			return nil, &FieldError{Field: field + ".sku", Reason: "is required"}
		}
		if err := json.Unmarshal(sr, &items[i].SKU); err != nil {
			return nil, &FieldError{Field: field + ".sku", Reason: "must be a string"}
		}
		if s := items[i].SKU; strings.TrimSpace(s) == "" || len(s) > MaxSKULength {
			return nil, &FieldError{Field: field + ".sku", Reason: fmt.Sprintf("must be 1 to %d characters, not blank", MaxSKULength)}
		}
		qr, ok := m["quantity"]
		if !ok || isNull(qr) {
			return nil, &FieldError{Field: field + ".quantity", Reason: "is required"}
		}
		// Decoded into an interface, not a json.Number: encoding/json would fill a
		// json.Number from a string such as "5", and the stored item would keep the string.
		var v any
		dec := json.NewDecoder(bytes.NewReader(qr))
		dec.UseNumber()
		err := dec.Decode(&v)
		q, isNumber := v.(json.Number)
		if err != nil || !isNumber {
			return nil, &FieldError{Field: field + ".quantity", Reason: "must be a whole number"}
		}
		f, err := q.Float64()
		if err != nil || f != math.Trunc(f) || f < 1 || f > MaxQuantity {
			return nil, &FieldError{Field: field + ".quantity", Reason: fmt.Sprintf("must be a whole number from 1 to %d", MaxQuantity)}
		}
		items[i].Quantity = int(f)
	}
	return items, nil
}

// checkShape walks the JSON tokens once to refuse what encoding/json would quietly
// accept: duplicate member names (the last one would win, so two readers could disagree
// on what the order says), nesting deeper than MaxDepth, and trailing data.
func CheckShape(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // in an object: the next string token is a key
	}
	var stack []*frame
	path := func() string {
		return fmt.Sprintf("depth %d", len(stack))
	}
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &FieldError{Reason: "body is not valid JSON: " + trimJSONError(err)}
		}
		if first && tok != json.Delim('{') {
			return &FieldError{Reason: "body must be a JSON object"}
		}
		if !first && len(stack) == 0 {
			return &FieldError{Reason: "body has data after the JSON object"}
		}
		first = false
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				field := k
				if len(stack) > 1 {
					field = ""
				}
				return &FieldError{Field: field, Reason: fmt.Sprintf("member %q appears more than once", k)}
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		if top != nil && top.object {
			top.expect = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > MaxDepth {
			return &FieldError{Reason: fmt.Sprintf("body nests deeper than %d levels (%s)", MaxDepth, path())}
		}
	}
	return nil
}

func trimJSONError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Canonical returns the order as compact JSON with members in a fixed order, so two copies
// of the same order compare equal however their JSON was spaced.
func (o *Order) Canonical() []byte {
	m := make(map[string]any, len(o.Fields))
	for k, v := range o.Fields {
		m[k] = canonicalValue(v)
	}
	b, _ := json.Marshal(m) // map keys are sorted, at every depth
	return b
}

// canonicalValue decodes a member so that re-encoding sorts the keys of nested objects
// too: two clients that serialise the same order with members in another order send the
// same content. Numbers keep their text, so 2 and 2.0 stay distinct as sent.
func canonicalValue(v json.RawMessage) any {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return out
}

// Hash identifies the order's content. The store keeps it beside the order, so a
// redelivered message can be told apart from a different order that reuses an id.
func (o *Order) Hash() string {
	sum := sha256.Sum256(o.Canonical())
	return hex.EncodeToString(sum[:])
}
