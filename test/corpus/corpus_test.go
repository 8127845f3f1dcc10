// Package corpus drives the bad-input corpus in testdata/cases.json through the real
// handler: HTTP requests through the host imitation, envelopes straight to the handler
// (as only a broken host would send them), and messages on the queues. Each case names
// its expected answer; none may produce a 500, a crash, a hang or a lost message.
package corpus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/sluice-dev/sluice/test/faults"
	"github.com/sluice-dev/sluice/test/security"
	"github.com/sluice-dev/sluice/test/stack"
)

// Case is one input and the answer it must get.
type Case struct {
	Name string `json:"name"`
	// Via is how the input is sent: "http" through the host's HTTP front, "handler" as an
	// envelope straight to the handler, "queue" as a message on Queue.
	Via         string            `json:"via"`
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	ContentType string            `json:"contentType"`
	Headers     map[string]string `json:"headers"`
	Queue       string            `json:"queue"`

	// The input is Body, or the bytes of BodyBase64, or Template grown by Pad or Nest:
	// Pad adds a "note" member of that many bytes before the last '}', and Nest replaces
	// the first null with that many nested arrays. Raw puts a queue message on the queue
	// as it is, without the base64 encoding the host expects.
	Body       *string `json:"body"`
	BodyBase64 string  `json:"bodyBase64"`
	Template   string  `json:"template"`
	Pad        int     `json:"pad"`
	Nest       int     `json:"nest"`
	Raw        bool    `json:"raw"`

	Want Want   `json:"want"`
	Why  string `json:"why"`
}

// Want is the expected answer.
type Want struct {
	// HTTP: the status, whether the body is a problem document, the problem's field
	// and a piece of its detail.
	Status  int     `json:"status"`
	Problem bool    `json:"problem"`
	Field   *string `json:"field"`
	Detail  string  `json:"detail"`
	// Handler: the status of the HTTP output inside the reply.
	OutputStatus int `json:"outputStatus"`

	// Stored: the order was accepted and reached its sink (the container, or the
	// fulfilment API for a notification).
	Stored bool `json:"stored"`
	// Queue: poisoned on its first delivery with this reason; or moved to the poison
	// queue by the host itself; or refused by the queue service when enqueued.
	Poison         string `json:"poison"`
	HostPoison     bool   `json:"hostPoison"`
	EnqueueRefused bool   `json:"enqueueRefused"`
}

func (c *Case) body(t *testing.T) []byte {
	t.Helper()
	switch {
	case c.Body != nil:
		return []byte(*c.Body)
	case c.BodyBase64 != "":
		b, err := base64.StdEncoding.DecodeString(c.BodyBase64)
		if err != nil {
			t.Fatalf("%s: bodyBase64: %v", c.Name, err)
		}
		return b
	case c.Pad > 0:
		i := strings.LastIndexByte(c.Template, '}')
		return []byte(c.Template[:i] + `,"note":"` + strings.Repeat("x", c.Pad) + `"` + c.Template[i:])
	case c.Nest > 0:
		return []byte(strings.Replace(c.Template, "null", strings.Repeat("[", c.Nest)+strings.Repeat("]", c.Nest), 1))
	}
	return nil
}

func loadCases(t *testing.T) []*Case {
	t.Helper()
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []*Case
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("testdata/cases.json: %v", err)
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("case %s appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	return cases
}

// TestBadInputCorpus sends every case and checks its answer, then that the handler never
// restarted and that every queue message ended up stored or poisoned.
func TestBadInputCorpus(t *testing.T) {
	cases := loadCases(t)
	if len(cases) < 40 {
		t.Fatalf("the corpus holds %d cases, want at least 40", len(cases))
	}
	con := &faults.Console{}
	s := stack.StartT(t, stack.Options{Console: con, Settings: map[string]string{
		// A message the host cannot bind fails every delivery; with the default 30 s
		// between them, its five deliveries would take minutes.
		"AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:02",
	}})
	faults.WaitFor(t, "the cosmos container to be ready", time.Minute, func() bool {
		return con.Count("msg", "cosmos container ready") > 0
	})
	handler := handlerURL(t, s)
	pid := s.Hosts[0].HandlerPID()

	var queued []*queued
	counts := map[string]int{}
	for _, c := range cases {
		counts[c.Via]++
		switch c.Via {
		case "http":
			t.Run(c.Name, func(t *testing.T) { checkHTTP(t, s, c, send(t, c, s.URL(), c.body(t))) })
		case "handler":
			t.Run(c.Name, func(t *testing.T) { checkHandler(t, c, send(t, c, handler, c.body(t))) })
		case "queue":
			q := enqueue(t, s, c)
			if q != nil {
				queued = append(queued, q)
			}
		default:
			t.Fatalf("%s: unknown via %q", c.Name, c.Via)
		}
	}
	settleQueued(t, s, queued)

	st := s.Hosts[0].Stats()
	if st.Restarts != 0 || s.Hosts[0].HandlerPID() != pid {
		t.Errorf("the handler restarted %d times during the corpus", st.Restarts)
	}
	if n := con.Count("msg", "[unexpected] function panicked"); n > 0 {
		t.Errorf("%d invocations panicked", n)
	}
	t.Logf("corpus: %d cases (%d HTTP through the host, %d envelopes to the handler, %d queue messages); host: %d invocations, %d failed, %d poisoned by the host, %d handler restarts",
		len(cases), counts["http"], counts["handler"], counts["queue"], st.Invocations, st.Failures, st.Poisoned, st.Restarts)
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// send makes the case's request against base and returns the answer; a transport error
// or no answer within the client's timeout (a hang) fails the case.
func send(t *testing.T, c *Case, base string, body []byte) reply {
	t.Helper()
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+c.Path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if c.ContentType != "" {
		req.Header.Set("Content-Type", c.ContentType)
	}
	if c.Via == "handler" {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("X-Azure-Functions-InvocationId", "corpus-"+strings.ReplaceAll(c.Name, "/", "-"))
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

type problem struct {
	Status int    `json:"status"`
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func checkProblem(t *testing.T, w Want, contentType string, body []byte) {
	t.Helper()
	if !strings.HasPrefix(contentType, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", contentType)
		return
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("problem document %q: %v", body, err)
		return
	}
	status := w.Status
	if w.OutputStatus != 0 {
		status = w.OutputStatus
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if w.Field != nil && p.Field != *w.Field {
		t.Errorf("problem field %q, want %q (detail %q)", p.Field, *w.Field, p.Detail)
	}
	if w.Detail != "" && !strings.Contains(p.Detail, w.Detail) {
		t.Errorf("problem detail %q does not mention %q", p.Detail, w.Detail)
	}
}

func checkHTTP(t *testing.T, s *stack.Stack, c *Case, r reply) {
	t.Helper()
	w := c.Want
	if r.status >= 500 {
		t.Fatalf("answered %d %s", r.status, clip(r.body))
	}
	if r.status != w.Status {
		t.Fatalf("answered %d %s, want %d", r.status, clip(r.body), w.Status)
	}
	if w.Problem {
		checkProblem(t, w, r.header.Get("Content-Type"), r.body)
	}
	if w.Stored {
		checkStored(t, s, r)
	}
}

// checkStored follows an accepted order: its keys from the answer, a Location that is
// plain ASCII and addresses it, and a read through the read function once it is stored.
func checkStored(t *testing.T, s *stack.Stack, r reply) {
	t.Helper()
	var o struct {
		ID         string `json:"id"`
		CustomerID string `json:"customerId"`
	}
	if err := json.Unmarshal(r.body, &o); err != nil || o.ID == "" || o.CustomerID == "" {
		t.Fatalf("answer %s names no order: %v", clip(r.body), err)
	}
	path := "/api/customers/" + url.PathEscape(o.CustomerID) + "/orders/" + url.PathEscape(o.ID)
	if loc := r.header.Get("Location"); r.status == http.StatusAccepted && loc != path {
		t.Errorf("Location %q, want %q", loc, path)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			if strings.IndexFunc(v, func(r rune) bool { return r > unicode.MaxASCII || unicode.IsControl(r) }) >= 0 {
				t.Errorf("header %s = %q is not printable ASCII; the host would refuse it", k, v)
			}
		}
	}
	faults.WaitFor(t, "the order to be stored", time.Minute, func() bool {
		_, ok, err := s.Item(context.Background(), o.CustomerID, o.ID)
		return err == nil && ok
	})
	got := send(t, &Case{Name: "read", Method: http.MethodGet, Path: path}, s.URL(), nil)
	var back struct {
		ID         string `json:"id"`
		CustomerID string `json:"customerId"`
	}
	if got.status != http.StatusOK || json.Unmarshal(got.body, &back) != nil || back.ID != o.ID || back.CustomerID != o.CustomerID {
		t.Errorf("GET %s = %d %s, want the order %q of %q", path, got.status, clip(got.body), o.ID, o.CustomerID)
	}
}

// checkHandler checks the handler's own answer to an envelope: its status and, for an
// HTTP function, the status of the HTTP output it carries.
func checkHandler(t *testing.T, c *Case, r reply) {
	t.Helper()
	w := c.Want
	if r.status != w.Status {
		t.Fatalf("handler answered %d %s, want %d", r.status, clip(r.body), w.Status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("handler answered with Content-Type %q; the host accepts only JSON", ct)
	}
	if w.OutputStatus == 0 {
		return
	}
	var resp struct {
		Outputs map[string]struct {
			StatusCode int               `json:"statusCode"`
			Body       string            `json:"body"`
			Headers    map[string]string `json:"headers"`
		} `json:"Outputs"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("handler reply %s: %v", clip(r.body), err)
	}
	out, ok := resp.Outputs["res"]
	if !ok || out.StatusCode != w.OutputStatus {
		t.Fatalf("HTTP output %+v, want status %d", out, w.OutputStatus)
	}
	checkProblem(t, w, out.Headers["Content-Type"], []byte(out.Body))
}

// handlerURL finds the handler's listening address from /proc, since the host keeps its
// port to itself.
func handlerURL(t *testing.T, s *stack.Stack) string {
	t.Helper()
	addrs, err := security.ListeningSockets(s.Hosts[0].HandlerPID())
	if err != nil || len(addrs) != 1 {
		t.Fatalf("the handler's listening sockets: %v, %v", addrs, err)
	}
	if !addrs[0].Addr().IsLoopback() {
		t.Fatalf("the handler listens on %v; the corpus talks to loopback only", addrs[0])
	}
	return "http://" + netip.AddrPortFrom(addrs[0].Addr(), addrs[0].Port()).String()
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// queued is a queue case on its way through the pipeline.
type queued struct {
	c    *Case
	text string // the message as the function reads it
	key  string // the ledger key when the case expects it stored
}

// enqueue puts the case's message on its queue. A message the queue service must refuse
// is checked here and not followed further.
func enqueue(t *testing.T, s *stack.Stack, c *Case) *queued {
	t.Helper()
	body := c.body(t)
	queue := c.Queue
	if queue == "" {
		queue = "orders"
	}
	raw := base64.StdEncoding.EncodeToString(body)
	if c.Raw {
		raw = string(body)
	}
	err := s.EnqueueRaw(context.Background(), queue, raw)
	if c.Want.EnqueueRefused {
		t.Run(c.Name, func(t *testing.T) {
			if err == nil {
				t.Errorf("a %d-byte message was accepted; the queue service limit is 64 KB", len(raw))
			}
		})
		return nil
	}
	if err != nil {
		t.Fatalf("%s: enqueueing: %v", c.Name, err)
	}
	q := &queued{c: c, text: string(body)}
	if c.Want.Stored {
		var k struct {
			ID         string `json:"id"`
			CustomerID string `json:"customerId"`
			OrderID    string `json:"orderId"`
		}
		if err := json.Unmarshal(body, &k); err != nil {
			t.Fatalf("%s: a message expected to be stored must be JSON: %v", c.Name, err)
		}
		q.key = k.CustomerID + "/" + k.ID
		if queue == "notifications" {
			q.key = k.OrderID
		}
	}
	return q
}

// settleQueued waits until every queue case has its outcome and the queues are empty,
// then checks each case.
func settleQueued(t *testing.T, s *stack.Stack, cases []*queued) {
	t.Helper()
	ledgers := map[string]*faults.Ledger{"orders": faults.OrdersLedger(s), "notifications": faults.FulfilmentLedger(s)}
	sent := map[string][]string{}
	for _, q := range cases {
		if q.key != "" {
			sent[queueOf(q.c)] = append(sent[queueOf(q.c)], q.key)
		}
	}
	ctx := context.Background()
	poisoned := map[string][]faults.Poisoned{}
	tallies := map[string]faults.Tally{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := true
		for name, l := range ledgers {
			tally, err := l.Account(ctx, sent[name])
			if err != nil {
				t.Fatal(err)
			}
			tallies[name] = tally
			poisoned[name] = l.Poisoned()
			done = done && tally.Settled()
		}
		for _, q := range cases {
			done = done && (q.key != "" || findPoisoned(poisoned[queueOf(q.c)], q.text) != nil)
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, q := range cases {
		t.Run(q.c.Name, func(t *testing.T) {
			tally := tallies[queueOf(q.c)]
			p := findPoisoned(poisoned[queueOf(q.c)], q.text)
			switch w := q.c.Want; {
			case w.Stored:
				if p != nil {
					t.Errorf("poisoned (%s: %s), want stored", p.Reason, p.Detail)
				}
				if contains(tally.Missing, q.key) {
					t.Errorf("%s was not stored", q.key)
				}
			case p == nil:
				t.Errorf("not on the poison queue; the message is lost or still queued")
			case w.HostPoison:
				if p.Reason != "" {
					t.Errorf("poisoned by the handler (%s), want the host's bare copy", p.Reason)
				}
			case p.Reason != w.Poison:
				t.Errorf("poisoned with reason %q (%s), want %q", p.Reason, p.Detail, w.Poison)
			}
		})
	}
	for name, tally := range tallies {
		// Orders accepted over HTTP reach the same sinks, so keys this ledger was not
		// given are expected there; what may not happen is a message left behind or an
		// order stored or poisoned twice.
		if tally.Queued > 0 || len(tally.Repeated) > 0 {
			t.Errorf("%s: %s; %v", name, tally, tally.Repeated)
		}
	}
}

func queueOf(c *Case) string {
	if c.Queue == "" {
		return "orders"
	}
	return c.Queue
}

// findPoisoned returns the poison message holding exactly text, if any.
func findPoisoned(ps []faults.Poisoned, text string) *faults.Poisoned {
	for i := range ps {
		if ps[i].Message == text {
			return &ps[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
