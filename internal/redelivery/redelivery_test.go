package redelivery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/queues"
	"github.com/sluice-dev/sluice/internal/resilience"
)

const orderText = `{"id":"o-1","customerId":"c-1","items":[{"sku":"s","quantity":1}],"note":"keep me"}`

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestSplitWithoutState(t *testing.T) {
	body, st, err := Split(orderText)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != orderText {
		t.Errorf("body = %s, want the message unchanged", body)
	}
	if st != (State{}) {
		t.Errorf("state = %+v, want zero", st)
	}
}

func TestSplitRejectsNonObjects(t *testing.T) {
	for _, text := range []string{"", " ", "null", "[]", `[{"id":"a"}]`, `"text"`, "42", "true", "not json", `{"id":`, "\x00"} {
		body, st, err := Split(text)
		if err == nil {
			t.Errorf("Split(%q) = %s, %+v; want an error", text, body, st)
		}
	}
}

func TestSplitMalformedState(t *testing.T) {
	for _, state := range []string{`"x"`, `5`, `[]`, `{"count":"three"}`, `{"firstSeen":"yesterday"}`, `{"lastReason":7}`} {
		text := `{"id":"a","_redelivery":` + state + `}`
		_, _, err := Split(text)
		if err == nil || !strings.Contains(err.Error(), StateField) {
			t.Errorf("Split(%s) error = %v, want one naming %s", text, err, StateField)
		}
	}
	// A null state is no state.
	body, st, err := Split(`{"id":"a","_redelivery":null}`)
	if err != nil || st != (State{}) || string(body) != `{"id":"a"}` {
		t.Errorf("null state: %s, %+v, %v", body, st, err)
	}
}

func TestJoinSplitRoundTrip(t *testing.T) {
	first := time.Date(2026, 2, 3, 4, 5, 6, 789000000, time.UTC)
	for _, st := range []State{
		{Count: 1, FirstSeen: first, LastReason: "throttled"},
		{Count: 42, FirstSeen: first.In(time.FixedZone("x", 3600))},
		{},
	} {
		joined, err := Join([]byte(orderText), st)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(joined, &m); err != nil {
			t.Fatalf("Join output %s: %v", joined, err)
		}
		if _, ok := m[StateField]; !ok {
			t.Fatalf("Join output %s lacks %s", joined, StateField)
		}
		body, got, err := Split(string(joined))
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != st.Count || got.LastReason != st.LastReason || !got.FirstSeen.Equal(st.FirstSeen) {
			t.Errorf("state round trip: %+v, want %+v", got, st)
		}
		if !jsonEqual(t, body, []byte(orderText)) {
			t.Errorf("body round trip: %s, want %s", body, orderText)
		}
		// The order survives: the reserved member is gone before validation.
		o, err := order.Parse(body, order.ParseOptions{})
		if err != nil {
			t.Fatalf("order.Parse(split body): %v", err)
		}
		if o.ID != "o-1" || string(o.Fields["note"]) != `"keep me"` {
			t.Errorf("order after round trip = %+v", o)
		}
		// ...and would be refused with it.
		if _, err := order.Parse(joined, order.ParseOptions{}); err == nil {
			t.Errorf("order.Parse accepted a body carrying %s", StateField)
		}
	}
}

func TestJoinReplacesState(t *testing.T) {
	once, _ := Join([]byte(orderText), State{Count: 1, LastReason: "a"})
	twice, err := Join(once, State{Count: 2, LastReason: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(twice), StateField); n != 1 {
		t.Errorf("%s carries %s %d times", twice, StateField, n)
	}
	_, st, err := Split(string(twice))
	if err != nil || st.Count != 2 || st.LastReason != "b" {
		t.Errorf("state = %+v, %v; want the newer one", st, err)
	}
}

func TestJoinRejectsNonObjects(t *testing.T) {
	for _, body := range []string{"", "null", "[]", `"x"`, "1", "{"} {
		out, err := Join([]byte(body), State{Count: 1})
		if err == nil {
			t.Errorf("Join(%q) = %s, want an error", body, out)
		}
	}
}

func testQueue(base, max, horizon time.Duration) *Queue {
	return &Queue{Name: "orders", Config: config.RequeueConfig{BaseDelay: base, MaxDelay: max, Horizon: horizon}}
}

func TestDelaySchedule(t *testing.T) {
	q := testQueue(5*time.Second, 5*time.Minute, time.Hour)
	for count, want := range map[int]time.Duration{
		1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 4: 40 * time.Second,
		5: 80 * time.Second, 6: 160 * time.Second, 7: 5 * time.Minute, 30: 5 * time.Minute,
		1 << 30: 5 * time.Minute,
	} {
		if got := q.delay(count, 0); got != want {
			t.Errorf("delay(%d) = %v, want %v", count, got, want)
		}
	}
	// The dependency's hint is never undercut, and is itself capped at 7 days.
	for _, tc := range []struct {
		count      int
		hint, want time.Duration
	}{
		{1, 2 * time.Second, 5 * time.Second},
		{1, 90 * time.Second, 90 * time.Second},
		{7, 10 * time.Minute, 10 * time.Minute},
		{3, 30 * 24 * time.Hour, 7 * 24 * time.Hour},
		{3, -time.Second, 20 * time.Second},
	} {
		if got := q.delay(tc.count, tc.hint); got != tc.want {
			t.Errorf("delay(%d, hint %v) = %v, want %v", tc.count, tc.hint, got, tc.want)
		}
	}
	// No base delay: retry at once unless told otherwise.
	z := testQueue(0, time.Minute, time.Hour)
	if got := z.delay(5, 0); got != 0 {
		t.Errorf("zero base: delay = %v, want 0", got)
	}
	if got := z.delay(5, 3*time.Second); got != 3*time.Second {
		t.Errorf("zero base: delay with hint = %v, want 3s", got)
	}
}

func TestDelayBadCounts(t *testing.T) {
	// A count that did not come from Defer (a message carrying its own malformed state)
	// must not crash the function.
	q := testQueue(5*time.Second, 5*time.Minute, time.Hour)
	for _, count := range []int{0, -1, -1 << 40, -int(^uint(0) >> 1)} {
		if got := q.delay(count, 0); got != 5*time.Second {
			t.Errorf("delay(%d) = %v, want the base delay", count, got)
		}
	}
}

func TestDelayGrowsAndStaysCapped(t *testing.T) {
	for _, base := range []time.Duration{time.Millisecond, time.Second, 5 * time.Second, time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour} {
		for _, max := range []time.Duration{time.Second, 5 * time.Minute, time.Hour, 7 * 24 * time.Hour} {
			if base > max {
				continue
			}
			q := testQueue(base, max, time.Hour)
			prev := time.Duration(0)
			for count := 1; count <= 64; count++ {
				d := q.delay(count, 0)
				if d < base || d > max {
					t.Fatalf("base %v max %v: delay(%d) = %v outside [base, max]", base, max, count, d)
				}
				if d < prev {
					t.Fatalf("base %v max %v: delay(%d) = %v shrank from %v", base, max, count, d, prev)
				}
				prev = d
			}
			// Growth stops at the cap or after 20 doublings, whichever comes first.
			want := max
			if base <= max>>20 {
				want = base << 20
			}
			if prev != want {
				t.Errorf("base %v max %v: delay settles at %v, want %v", base, max, prev, want)
			}
		}
	}
}

// fakeQueueService imitates the Storage queue REST operations the client uses: creating a
// queue and putting a message.
type fakeQueueService struct {
	mu       sync.Mutex
	created  map[string]bool
	messages []sentMessage
	fail     int // status for every put when non-zero
}

type sentMessage struct {
	Queue      string
	Visibility int
	TTL        int
	Text       string
}

func (f *fakeQueueService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || r.Header.Get("Authorization") == "" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && len(parts) == 2:
		if f.created == nil {
			f.created = map[string]bool{}
		}
		f.created[parts[1]] = true
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "messages":
		if f.fail != 0 {
			w.Header().Set("x-ms-error-code", "InvalidInput")
			w.WriteHeader(f.fail)
			return
		}
		var m struct {
			MessageText string `xml:"MessageText"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := xml.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		text, err := base64.StdEncoding.DecodeString(m.MessageText)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		vis, _ := strconv.Atoi(r.URL.Query().Get("visibilitytimeout"))
		ttl, _ := strconv.Atoi(r.URL.Query().Get("messagettl"))
		f.messages = append(f.messages, sentMessage{Queue: parts[1], Visibility: vis, TTL: ttl, Text: string(text)})
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>m</MessageId><PopReceipt>p</PopReceipt></QueueMessage></QueueMessagesList>`)
	default:
		http.Error(w, "unexpected request", http.StatusNotFound)
	}
}

func (f *fakeQueueService) sent() []sentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMessage(nil), f.messages...)
}

// newQueueFixture returns a Queue whose client writes to a fake on 127.0.0.1.
func newQueueFixture(t *testing.T, cfg config.RequeueConfig) (*Queue, *fakeQueueService) {
	t.Helper()
	fake := &fakeQueueService{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cs := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" +
		base64.StdEncoding.EncodeToString([]byte("test-account-key")) +
		";QueueEndpoint=" + srv.URL + "/devstoreaccount1;"
	client, err := queues.New(queues.Options{ConnectionString: cs})
	if err != nil {
		t.Fatal(err)
	}
	return &Queue{Name: "orders", Client: client, Config: cfg, Timeout: 5 * time.Second}, fake
}

func testInvocation() *invocation.Invocation {
	return &invocation.Invocation{ID: "inv-1", Function: "process", Logger: slog.New(slog.DiscardHandler)}
}

var requeue = config.RequeueConfig{BaseDelay: 5 * time.Second, MaxDelay: 5 * time.Minute, Horizon: time.Hour}

func throttled(hint time.Duration) error {
	return &resilience.Error{Kind: resilience.Transient, Reason: "throttle-retries-exhausted", RetryAfter: hint, Hinted: true}
}

func TestDeferFirstTime(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	inserted := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	msg := &invocation.QueueMessage{ID: "m-1", DequeueCount: 1, InsertionTime: inserted, Text: orderText}
	before := time.Now().UTC()
	if err := q.Defer(context.Background(), testInvocation(), msg, []byte(orderText), State{}, throttled(2*time.Second)); err != nil {
		t.Fatalf("Defer: %v", err)
	}
	sent := fake.sent()
	if len(sent) != 1 {
		t.Fatalf("sent %d messages, want 1: %+v", len(sent), sent)
	}
	m := sent[0]
	if m.Queue != "orders" || m.Visibility != 5 || m.TTL != -1 {
		t.Errorf("sent to %q visible in %ds ttl %d; want orders, 5s (the base delay over a 2s hint), never expiring", m.Queue, m.Visibility, m.TTL)
	}
	body, st, err := Split(m.Text)
	if err != nil {
		t.Fatalf("re-enqueued text %q: %v", m.Text, err)
	}
	if !jsonEqual(t, body, []byte(orderText)) {
		t.Errorf("re-enqueued body %s, want %s", body, orderText)
	}
	// First seen is this deferral, not the metadata's insertion time, which a message's
	// own "InsertionTime" member can override.
	if st.Count != 1 || st.FirstSeen.Before(before) || st.LastReason != "throttle-retries-exhausted" {
		t.Errorf("state = %+v, want count 1, first seen now, the cause's reason", st)
	}
}

func TestDeferLaterTimes(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	first := time.Now().UTC().Add(-10 * time.Minute)
	msg := &invocation.QueueMessage{ID: "m-2", InsertionTime: time.Now().UTC()}
	cases := []struct {
		st         State
		cause      error
		visibility int
		reason     string
	}{
		{State{Count: 3, FirstSeen: first}, throttled(0), 40, "throttle-retries-exhausted"},
		{State{Count: 1, FirstSeen: first}, throttled(90 * time.Second), 90, "throttle-retries-exhausted"},
		{State{Count: 50, FirstSeen: first}, errors.New("connection reset"), 300, "transient"},
		{State{Count: -7, FirstSeen: first}, errors.New("x"), 5, "transient"}, // malformed count
	}
	for i, tc := range cases {
		if err := q.Defer(context.Background(), testInvocation(), msg, []byte(orderText), tc.st, tc.cause); err != nil {
			t.Fatalf("case %d: Defer: %v", i, err)
		}
		sent := fake.sent()
		if len(sent) != i+1 {
			t.Fatalf("case %d: %d messages sent", i, len(sent))
		}
		m := sent[i]
		_, st, err := Split(m.Text)
		if err != nil {
			t.Fatal(err)
		}
		if m.Queue != "orders" || m.Visibility != tc.visibility {
			t.Errorf("case %d: sent to %q visible in %ds, want orders, %ds", i, m.Queue, m.Visibility, tc.visibility)
		}
		if st.Count != tc.st.Count+1 || !st.FirstSeen.Equal(first) || st.LastReason != tc.reason {
			t.Errorf("case %d: state %+v, want count %d, first seen kept, reason %q", i, st, tc.st.Count+1, tc.reason)
		}
	}
}

func TestDeferWithoutInsertionTime(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	before := time.Now().UTC()
	if err := q.Defer(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(orderText), State{}, throttled(0)); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	_, st, err := Split(fake.sent()[0].Text)
	if err != nil {
		t.Fatal(err)
	}
	if st.FirstSeen.Before(before) || st.FirstSeen.After(after) {
		t.Errorf("FirstSeen = %v, want the time of the first deferral", st.FirstSeen)
	}
}

// TestDeferIgnoresFutureFirstSeen: a first-seen time ahead of the clock would keep the
// message inside the horizon for ever, so it is replaced by the time of this deferral.
func TestDeferIgnoresFutureFirstSeen(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	before := time.Now().UTC()
	st := State{Count: 3, FirstSeen: before.Add(1000 * time.Hour)}
	if err := q.Defer(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(orderText), st, throttled(0)); err != nil {
		t.Fatal(err)
	}
	_, got, err := Split(fake.sent()[0].Text)
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstSeen.Before(before) || got.FirstSeen.After(time.Now().UTC()) {
		t.Errorf("FirstSeen = %v, want the time of this deferral", got.FirstSeen)
	}
}

func TestDeferPoisonsPastTheHorizon(t *testing.T) {
	for name, tc := range map[string]struct {
		st       State
		inserted time.Time
	}{
		"from the state": {State{Count: 12, FirstSeen: time.Now().UTC().Add(-2 * time.Hour)}, time.Now().UTC()},
	} {
		t.Run(name, func(t *testing.T) {
			q, fake := newQueueFixture(t, requeue)
			msg := &invocation.QueueMessage{ID: "m-9", DequeueCount: 3, InsertionTime: tc.inserted, Text: "original text"}
			cause := throttled(time.Second)
			if err := q.Defer(context.Background(), testInvocation(), msg, []byte(orderText), tc.st, cause); err != nil {
				t.Fatalf("Defer: %v", err)
			}
			sent := fake.sent()
			if len(sent) != 1 || sent[0].Queue != "orders"+queues.PoisonSuffix {
				t.Fatalf("sent %+v, want one message to orders-poison", sent)
			}
			if sent[0].Visibility != 0 {
				t.Errorf("poison message visible in %ds, want at once", sent[0].Visibility)
			}
			var p queues.PoisonMessage
			if err := json.Unmarshal([]byte(sent[0].Text), &p); err != nil {
				t.Fatalf("poison message %q: %v", sent[0].Text, err)
			}
			if p.Reason != "retry-horizon-exceeded" || p.Function != "process" || p.InvocationID != "inv-1" || p.MessageID != "m-9" || p.DequeueCount != 3 {
				t.Errorf("poison message = %+v", p)
			}
			if p.Message != orderText {
				t.Errorf("poison message carries %q, want the body", p.Message)
			}
			if !strings.Contains(p.Detail, fmt.Sprintf("%d deferrals", tc.st.Count)) || !strings.Contains(p.Detail, cause.Error()) {
				t.Errorf("detail %q should give the deferrals and the last cause", p.Detail)
			}
			if p.PoisonedAt.IsZero() {
				t.Error("PoisonedAt not set")
			}
		})
	}
}

func TestDeferJustInsideTheHorizon(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	st := State{Count: 5, FirstSeen: time.Now().UTC().Add(-59 * time.Minute)}
	if err := q.Defer(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(orderText), st, throttled(0)); err != nil {
		t.Fatal(err)
	}
	if sent := fake.sent(); len(sent) != 1 || sent[0].Queue != "orders" {
		t.Errorf("sent %+v, want a deferral, not a poison", sent)
	}
}

func TestDeferOutlivesTheInvocation(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the invocation's own deadline has passed
	if err := q.Defer(ctx, testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(orderText), State{}, context.DeadlineExceeded); err != nil {
		t.Fatalf("Defer with an ended context: %v", err)
	}
	if len(fake.sent()) != 1 {
		t.Error("nothing re-enqueued")
	}
	if err := q.Poison(ctx, testInvocation(), &invocation.QueueMessage{ID: "m"}, "text", "invalid-json", "detail"); err != nil {
		t.Fatalf("Poison with an ended context: %v", err)
	}
	if len(fake.sent()) != 2 {
		t.Error("nothing poisoned")
	}
}

func TestDeferReportsAFailedWrite(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	fake.fail = http.StatusBadRequest
	err := q.Defer(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(orderText), State{}, throttled(0))
	if err == nil || !strings.Contains(err.Error(), "re-enqueue after throttle-retries-exhausted") {
		t.Errorf("Defer = %v, want a re-enqueue error naming the reason", err)
	}
	err = q.Poison(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, "text", "invalid-order", "d")
	if err == nil || !strings.Contains(err.Error(), "invalid-order") {
		t.Errorf("Poison = %v, want an error naming the reason", err)
	}
}

func TestDeferRefusesANonObjectBody(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	for _, body := range []string{"null", "[]", "nope"} {
		if err := q.Defer(context.Background(), testInvocation(), &invocation.QueueMessage{ID: "m"}, []byte(body), State{}, throttled(0)); err == nil {
			t.Errorf("Defer(%q) = nil, want an error", body)
		}
	}
	if n := len(fake.sent()); n != 0 {
		t.Errorf("%d messages sent for bodies that are not objects", n)
	}
}

func TestLogger(t *testing.T) {
	var buf strings.Builder
	inv := &invocation.Invocation{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	Logger(inv, &invocation.QueueMessage{ID: "m-7", DequeueCount: 4}).Info("x")
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["message_id"] != "m-7" || rec["dequeue_count"] != float64(4) {
		t.Errorf("log record = %v", rec)
	}
}

// TestDeferIgnoresInsertionTime: the host lets an order's own members override the
// message metadata, so an old InsertionTime must not put a first deferral past the
// horizon.
func TestDeferIgnoresInsertionTime(t *testing.T) {
	q, fake := newQueueFixture(t, requeue)
	msg := &invocation.QueueMessage{ID: "m-9", DequeueCount: 1, InsertionTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Text: orderText}
	if err := q.Defer(context.Background(), testInvocation(), msg, []byte(orderText), State{}, throttled(time.Second)); err != nil {
		t.Fatal(err)
	}
	if sent := fake.sent(); len(sent) != 1 || sent[0].Queue != "orders" {
		t.Fatalf("sent %+v, want a deferral to orders", sent)
	}
}

// TestSplitRefusesWhatAMapWouldHide: duplicate members and trailing data must not be
// merged away when the state is taken out.
func TestSplitRefusesWhatAMapWouldHide(t *testing.T) {
	for _, text := range []string{
		`{"id":"a","id":"b","customerId":"c","items":[],"_redelivery":{"count":1}}`,
		`{"id":"a","customerId":"c","items":[],"_redelivery":null} trailing`,
	} {
		if _, _, err := Split(text); err == nil {
			t.Errorf("Split(%s) accepted it", text)
		}
	}
}

// TestJoinDoesNotEscapeHTML: '<' escaped as \u003c takes six bytes, which could push a
// re-enqueued message past the 64 KiB a queue message holds.
func TestJoinDoesNotEscapeHTML(t *testing.T) {
	out, err := Join([]byte(`{"id":"a","customerId":"c","note":"<<&>>"}`), State{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"note":"<<&>>"`) {
		t.Errorf("Join wrote %s, want the note unescaped", out)
	}
}
