package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

// TestOrderTravelsThePipeline sends an order the way a user does (curl to
// localhost:7071/api/orders) and follows it through the queue into Cosmos DB and back out
// through the read function and on to the fulfilment API.
func TestOrderTravelsThePipeline(t *testing.T) {
	s := stack.StartT(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	order := `{"id":"order-1","customerId":"cust-1","items":[{"sku":"apple","quantity":2}],"note":"leave at door"}`
	resp := do(t, http.MethodPost, s.URL()+"/api/orders", "application/json", order)
	if resp.status != http.StatusAccepted {
		t.Fatalf("POST /api/orders = %d %s, want 202", resp.status, resp.body)
	}
	if loc := resp.header.Get("Location"); loc != "/api/customers/cust-1/orders/order-1" {
		t.Errorf("Location = %q, want /api/customers/cust-1/orders/order-1", loc)
	}

	got := eventually(t, 10*time.Second, func() (httpResult, bool) {
		r := do(t, http.MethodGet, s.URL()+"/api/customers/cust-1/orders/order-1", "", "")
		return r, r.status == http.StatusOK
	})
	var stored map[string]any
	if err := json.Unmarshal([]byte(got.body), &stored); err != nil {
		t.Fatalf("read body %q: %v", got.body, err)
	}
	if stored["note"] != "leave at door" || stored["customerId"] != "cust-1" {
		t.Errorf("read returned %v, want the order as sent", stored)
	}
	for k := range stored {
		if strings.HasPrefix(k, "_") || k == "contentHash" {
			t.Errorf("read exposes store-internal member %q", k)
		}
	}

	// The same order again: still one item.
	if r := do(t, http.MethodPost, s.URL()+"/api/orders", "application/json", order); r.status != http.StatusAccepted {
		t.Fatalf("second POST = %d", r.status)
	}
	waitQueueEmpty(t, s, "orders")
	counts, err := s.CountByID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := counts["cust-1/order-1"]; n != 1 {
		t.Errorf("container holds %d items for order-1, want 1 (all: %v)", n, counts)
	}

	// The second create met a conflict; that is an answer, not a failure of the store.
	if d := health(s.URL())["cosmos-writes"]; d.Counts["permanent"] != 0 || d.Counts["failures"] != 0 || d.Breaker.State != "closed" {
		t.Errorf("after a duplicate delivery cosmos-writes reports %v, breaker %q; want no failures", d.Counts, d.Breaker.State)
	}

	// Both deliveries reach notify; the API fulfils the order once.
	eventually(t, 10*time.Second, func() (struct{}, bool) {
		return struct{}{}, len(s.Fulfilment.Calls()) >= 2
	})
	if f := s.Fulfilment.Fulfilled(); f["order-1"] != 1 {
		t.Errorf("fulfilments for order-1 = %d, want 1 (calls %v)", f["order-1"], s.Fulfilment.Calls())
	}
}

func TestReadMissingOrderIs404(t *testing.T) {
	s := stack.StartT(t, stack.Options{NoFulfilment: true})
	r := do(t, http.MethodGet, s.URL()+"/api/customers/nobody/orders/nothing", "", "")
	if r.status != http.StatusNotFound {
		t.Fatalf("GET missing order = %d %s, want 404", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
}

func TestHealthReportsPolicies(t *testing.T) {
	s := stack.StartT(t, stack.Options{})
	r := do(t, http.MethodGet, s.URL()+"/api/health", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/health = %d", r.status)
	}
	var h struct {
		Status       string `json:"status"`
		Dependencies []struct {
			Name    string `json:"name"`
			Breaker struct {
				State string `json:"state"`
			} `json:"circuitBreaker"`
			Limiter struct {
				MaxConcurrency int `json:"maxConcurrency"`
			} `json:"limiter"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(r.body), &h); err != nil {
		t.Fatalf("health body %q: %v", r.body, err)
	}
	names := map[string]bool{}
	for _, d := range h.Dependencies {
		names[d.Name] = true
		if d.Breaker.State != "closed" || d.Limiter.MaxConcurrency <= 0 {
			t.Errorf("dependency %s: breaker %q, max concurrency %d", d.Name, d.Breaker.State, d.Limiter.MaxConcurrency)
		}
	}
	for _, want := range []string{"cosmos-writes", "cosmos-reads", "fulfilment-api"} {
		if !names[want] {
			t.Errorf("health does not report %s (got %v)", want, names)
		}
	}
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, url, contentType, body string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// eventually polls f every 100 ms until it reports done or the limit passes.
func eventually[T any](t testing.TB, limit time.Duration, f func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v, done := f()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v (last: %+v)", limit, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitQueueEmpty(t testing.TB, s *stack.Stack, queue string) {
	t.Helper()
	eventually(t, 30*time.Second, func() (string, bool) {
		n, err := s.ApproximateCount(context.Background(), queue)
		if err != nil {
			return err.Error(), false
		}
		return fmt.Sprintf("%d messages", n), n == 0
	})
}

// TestHostListsTheAppRoutes checks the routes the host serves for the repository's
// function folders, which is also what `make run` prints.
func TestHostListsTheAppRoutes(t *testing.T) {
	s := stack.StartT(t, stack.Options{NoFulfilment: true})
	got := map[string]string{}
	for _, r := range s.Hosts[0].HTTPRoutes() {
		got[r.Methods+" "+r.Path] = r.Function
	}
	for route, fn := range map[string]string{
		"POST /api/orders": "ingest",
		"GET /api/customers/{customerId}/orders/{id}": "read",
		"PUT /api/customers/{customerId}/orders/{id}": "write",
		"GET /api/health": "health",
	} {
		if got[route] != fn {
			t.Errorf("route %q served by %q, want %q (all: %v)", route, got[route], fn, got)
		}
	}
}
