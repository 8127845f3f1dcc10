package faultproxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/sluice-dev/sluice/test/cosmosstandin"
)

// standIn is shared by the package's tests: each test uses its own
// database, and starting Node once saves about half a second per test.
var standIn *cosmosstandin.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := cosmosstandin.Start(ctx, cosmosstandin.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standIn = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

func startProxy(t testing.TB, opts Options) *Proxy {
	t.Helper()
	opts.Target = standIn.Endpoint
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	p, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// cosmosClient returns an azcosmos client for the proxy, with azcore's
// retries set to retries (-1 for none). It verifies the proxy's
// certificate, so a client that bypasses the proxy fails loudly.
func cosmosClient(t testing.TB, p *Proxy, retries int32) *azcosmos.Client {
	return cosmosClientTLS(t, p, retries, &tls.Config{RootCAs: p.RootCAs()})
}

func cosmosClientTLS(t testing.TB, p *Proxy, retries int32, tc *tls.Config) *azcosmos.Client {
	t.Helper()
	cred, err := azcosmos.NewKeyCredential(cosmosstandin.EmulatorKey)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := azcosmos.NewClientWithKey(p.Endpoint(), cred, &azcosmos.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: tr},
			Retry: policy.RetryOptions{
				MaxRetries: retries,
				RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond,
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newContainer creates a database named after the test with an orders
// container partitioned on /customerId, and returns the container.
func newContainer(t testing.TB, c *azcosmos.Client) *azcosmos.ContainerClient {
	t.Helper()
	ctx := context.Background()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	if _, err := c.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: name}, nil); err != nil {
		t.Fatalf("create database: %v", err)
	}
	db, err := c.NewDatabase(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateContainer(ctx, azcosmos.ContainerProperties{
		ID:                     "orders",
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/customerId"}},
	}, nil)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	cc, err := db.NewContainer("orders")
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func doc(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"customerId":"c1"}`, id)
}

var pk = azcosmos.NewPartitionKeyString("c1")

func responseError(err error) *azcore.ResponseError {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func statusOf(err error) int {
	if re := responseError(err); re != nil {
		return re.StatusCode
	}
	return 0
}

// TestAccountRewrite shows that without the rewrite azcosmos leaves the
// proxy after the account request, and that with it every request comes
// through.
func TestAccountRewrite(t *testing.T) {
	for _, test := range []struct {
		name       string
		keep       bool
		wantWrites int64
	}{
		{"rewritten", false, 10},
		{"kept", true, 0},
	} {
		t.Run(test.name, func(t *testing.T) {
			p := startProxy(t, Options{keepAccountEndpoints: test.keep})
			// Verification is skipped so that the client can reach the
			// stand-in directly, as it does when the rewrite is off.
			c := newContainer(t, cosmosClientTLS(t, p, -1, &tls.Config{InsecureSkipVerify: true}))
			ctx := context.Background()
			for i := range 10 {
				id := fmt.Sprintf("o%d", i)
				if _, err := c.CreateItem(ctx, pk, doc(id), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := c.ReadItem(ctx, pk, id, nil); err != nil {
					t.Fatal(err)
				}
			}
			s := p.Stats()
			if s.WriteRequests != test.wantWrites || s.ReadRequests != test.wantWrites {
				t.Errorf("proxy saw %d writes and %d reads, want %d each", s.WriteRequests, s.ReadRequests, test.wantWrites)
			}
			if !test.keep && s.AccountRewrites == 0 {
				t.Error("no account response was rewritten")
			}
			if s.MetadataRequests == 0 {
				t.Error("proxy saw no metadata request")
			}
		})
	}
}

// TestTokenBucket floods the proxy with concurrent upserts without client
// retries and checks that it throttles with a hint that fits the bucket
// and forwards what the bucket allows over the elapsed time.
func TestTokenBucket(t *testing.T) {
	const rate, burst = 200.0, 20.0
	p := startProxy(t, Options{WritesPerSecond: rate})
	c := newContainer(t, cosmosClient(t, p, -1))
	p.Reset()

	const workers, perWorker = 16, 150
	deadline := time.Now().Add(1500 * time.Millisecond)
	var (
		mu      sync.Mutex
		hints   []int
		other   []error
		wg      sync.WaitGroup
		started = time.Now()
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				_, err := c.UpsertItem(context.Background(), pk, doc(fmt.Sprintf("w%d-%d", w, i)), nil)
				if err == nil {
					continue
				}
				re := responseError(err)
				mu.Lock()
				if re != nil && re.StatusCode == http.StatusTooManyRequests {
					ms, _ := strconv.Atoi(re.RawResponse.Header.Get("x-ms-retry-after-ms"))
					hints = append(hints, ms)
					if sub := re.RawResponse.Header.Get("x-ms-substatus"); sub != "3200" {
						other = append(other, fmt.Errorf("substatus %q", sub))
					}
				} else {
					other = append(other, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(started)
	s := p.Stats()

	if len(other) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(other), other[0])
	}
	if s.ThrottledWrites == 0 || int64(len(hints)) != s.ThrottledWrites {
		t.Fatalf("clients saw %d 429s, proxy counted %d; want the same, above zero", len(hints), s.ThrottledWrites)
	}
	maxHint := int(math.Ceil(1000 / rate))
	for _, h := range hints {
		if h < 1 || h > maxHint {
			t.Fatalf("retry hint %d ms outside [1, %d]", h, maxHint)
		}
	}
	// The bucket can never release more than its capacity plus what
	// refills over the run. The lower bound is loose: it only fails if
	// the proxy forwards far less than the clients offered.
	upper := burst + rate*s.Elapsed.Seconds() + 1
	lower := 0.5 * rate * elapsed.Seconds()
	if f := float64(s.WritesForwarded); f > upper || f < lower {
		t.Errorf("forwarded %d writes in %v, want between %.0f and %.0f", s.WritesForwarded, s.Elapsed, lower, upper)
	}
	if s.WriteRequests != s.WritesForwarded+s.ThrottledWrites {
		t.Errorf("attempts %d != forwarded %d + throttled %d", s.WriteRequests, s.WritesForwarded, s.ThrottledWrites)
	}

	var fwd, thr int64
	perBucket := burst + rate*s.BucketWidth.Seconds() + 1
	for _, b := range s.Series {
		fwd += b.WritesForwarded
		thr += b.WritesThrottled
		if float64(b.WritesForwarded) > perBucket {
			t.Errorf("interval at %v forwarded %d writes, bucket allows %.0f", b.Offset, b.WritesForwarded, perBucket)
		}
	}
	if fwd != s.WritesForwarded || thr != s.ThrottledWrites {
		t.Errorf("series sums to %d forwarded, %d throttled; totals are %d, %d", fwd, thr, s.WritesForwarded, s.ThrottledWrites)
	}
	t.Logf("%v: %d attempts, %d forwarded (%.0f/s), %d throttled (%.0f%%), hints %d..%d ms",
		elapsed.Round(time.Millisecond), s.WriteRequests, s.WritesForwarded,
		float64(s.WritesForwarded)/s.Elapsed.Seconds(), s.ThrottledWrites,
		100*float64(s.ThrottledWrites)/float64(s.WriteRequests), slicesMin(hints), slicesMax(hints))
}

func slicesMin(s []int) int {
	m := math.MaxInt
	for _, v := range s {
		m = min(m, v)
	}
	return m
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// rawCreate posts a document to the container newContainer made, the
// way azcosmos does but without its retries.
func rawCreate(t *testing.T, hc *http.Client, p *Proxy, id string) (*http.Response, []byte, error) {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	req, err := http.NewRequest(http.MethodPost, p.Endpoint()+"dbs/"+name+"/colls/orders/docs", strings.NewReader(string(doc(id))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-ms-documentdb-partitionkey", `["c1"]`)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestScriptedStatusesInOrder(t *testing.T) {
	p := startProxy(t, Options{})
	newContainer(t, cosmosClient(t, p, -1))
	hc := p.Client()
	defer hc.CloseIdleConnections()
	p.Reset()

	p.Script(
		Rule{Match: Writes, Times: 3, Status: 429, Headers: map[string]string{"x-ms-retry-after-ms": "1500"}},
		Rule{Match: Writes, Status: 503},
	)
	want := []int{429, 429, 429, 503, 201, 409}
	for i, w := range want {
		resp, body, err := rawCreate(t, hc, p, "o1")
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		if resp.StatusCode != w {
			t.Fatalf("attempt %d: status %d, want %d", i+1, resp.StatusCode, w)
		}
		if w == 429 {
			if h := resp.Header.Get("x-ms-retry-after-ms"); h != "1500" {
				t.Errorf("attempt %d: retry hint %q, want 1500", i+1, h)
			}
			var e struct{ Code, Message string }
			if err := json.Unmarshal(body, &e); err != nil || e.Code != "TooManyRequests" || e.Message == "" {
				t.Errorf("attempt %d: body %s is not a Cosmos error", i+1, body)
			}
		}
	}
	s := p.Stats()
	if s.WriteAttempts["o1"] != 6 || s.WritesForwarded != 2 || s.FaultStatuses[429] != 3 ||
		s.FaultStatuses[503] != 1 || s.Faults[FaultStatus] != 4 || s.ThrottledWrites != 0 {
		t.Errorf("stats: attempts %d, forwarded %d, faults %v %v, throttled %d",
			s.WriteAttempts["o1"], s.WritesForwarded, s.Faults, s.FaultStatuses, s.ThrottledWrites)
	}
}

// TestBadRequestIsNotRetried: azcore retries neither 400 nor its
// substatus, so exactly one attempt reaches the proxy.
func TestBadRequestIsNotRetried(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, 3))
	p.Reset()
	p.Script(Rule{Match: Writes, Status: 400, Headers: map[string]string{"x-ms-substatus": "1001"}})

	_, err := c.CreateItem(context.Background(), pk, doc("o1"), nil)
	re := responseError(err)
	if re == nil || re.StatusCode != 400 || re.RawResponse.Header.Get("x-ms-substatus") != "1001" {
		t.Fatalf("got %v, want 400 BadRequest with substatus 1001", err)
	}
	if s := p.Stats(); s.WriteAttempts["o1"] != 1 || s.WritesForwarded != 0 {
		t.Errorf("attempts %d, forwarded %d; want 1, 0", s.WriteAttempts["o1"], s.WritesForwarded)
	}
	// The rule is spent: the next attempt passes.
	if _, err := c.CreateItem(context.Background(), pk, doc("o1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestAzcoreRetriesScripted429: with retries on, azcosmos rides out a
// short 429 script and makes exactly the attempts the script implies.
func TestAzcoreRetriesScripted429(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, 3))
	p.Reset()
	p.Script(Rule{Match: Writes, Times: 3, Status: 429, Headers: map[string]string{"x-ms-retry-after-ms": "1"}})
	if _, err := c.CreateItem(context.Background(), pk, doc("o1"), nil); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.WriteAttempts["o1"] != 4 || s.WritesForwarded != 1 {
		t.Errorf("attempts %d, forwarded %d; want 4, 1", s.WriteAttempts["o1"], s.WritesForwarded)
	}
}

func TestLatency(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, -1))
	ctx := context.Background()
	if _, err := c.CreateItem(ctx, pk, doc("o1"), nil); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	p.SetLatency(20*time.Millisecond, 0)
	p.Script(Rule{Match: Reads, Times: 2, Latency: 30 * time.Millisecond})
	for range 5 {
		if _, err := c.ReadItem(ctx, pk, "o1", nil); err != nil {
			t.Fatal(err)
		}
	}
	s := p.Stats()
	// Every read gets the added latency; the first two also the rule's.
	if s.Faults[FaultLatency] != 7 || s.ReadsForwarded != 5 {
		t.Errorf("latency faults %d, reads forwarded %d; want 7, 5", s.Faults[FaultLatency], s.ReadsForwarded)
	}

	// A request whose caller gives up during the delay is not forwarded.
	p.Reset()
	p.SetLatency(time.Hour, 0)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.ReadItem(cctx, pk, "o1", nil); err == nil {
		t.Fatal("read succeeded through an hour of latency")
	}
	if s := p.Stats(); s.ReadsForwarded != 0 {
		t.Errorf("abandoned read was forwarded")
	}
}

func TestResetBeforeForward(t *testing.T) {
	p := startProxy(t, Options{})
	newContainer(t, cosmosClient(t, p, -1))
	hc := p.Client()
	defer hc.CloseIdleConnections()
	p.Reset()
	p.Script(Rule{Match: Writes, Reset: ResetBeforeForward})

	if _, _, err := rawCreate(t, hc, p, "o1"); err == nil {
		t.Fatal("request succeeded across a reset")
	}
	resp, _, err := rawCreate(t, hc, p, "o1")
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("after the reset: %v %v, want 201: the first attempt must not have reached the store", resp, err)
	}
	if s := p.Stats(); s.Faults[FaultReset] != 1 || s.WritesForwarded != 1 || s.WriteAttempts["o1"] != 2 {
		t.Errorf("resets %d, forwarded %d, attempts %d; want 1, 1, 2", s.Faults[FaultReset], s.WritesForwarded, s.WriteAttempts["o1"])
	}
}

// TestResetMidResponse: the store applies the create but the client sees
// a failure (azcosmos does not retry a cut body), and the caller's next
// attempt meets 409: the case an idempotent write path must treat as
// success.
func TestResetMidResponse(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, 3))
	ctx := context.Background()
	p.Reset()
	p.Script(Rule{Match: Writes, Reset: ResetMidResponse})

	_, err := c.CreateItem(ctx, pk, doc("o1"), nil)
	if err == nil || responseError(err) != nil {
		t.Fatalf("create across a cut response: %v, want a transport error", err)
	}
	if _, err := c.ReadItem(ctx, pk, "o1", nil); err != nil {
		t.Errorf("the cut attempt should have been stored: %v", err)
	}
	if _, err := c.CreateItem(ctx, pk, doc("o1"), nil); statusOf(err) != http.StatusConflict {
		t.Errorf("second create: %v, want 409", err)
	}
	if s := p.Stats(); s.Faults[FaultTruncate] != 1 || s.WritesForwarded != 2 || s.WriteAttempts["o1"] != 2 {
		t.Errorf("truncations %d, forwarded %d, attempts %d; want 1, 2, 2",
			s.Faults[FaultTruncate], s.WritesForwarded, s.WriteAttempts["o1"])
	}
}

func TestEveryKth(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, -1))
	ctx := context.Background()
	if _, err := c.CreateItem(ctx, pk, doc("o1"), nil); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	p.Script(Rule{Match: Reads, Every: 3, For: time.Minute, Status: 503})
	var failed []int
	for i := 1; i <= 9; i++ {
		if _, err := c.ReadItem(ctx, pk, "o1", nil); err != nil {
			if statusOf(err) != 503 {
				t.Fatalf("read %d: %v", i, err)
			}
			failed = append(failed, i)
		}
	}
	if fmt.Sprint(failed) != "[3 6 9]" {
		t.Errorf("reads that failed: %v, want [3 6 9]", failed)
	}
	// Writes do not match the rule.
	if _, err := c.UpsertItem(ctx, pk, doc("o1"), nil); err != nil {
		t.Errorf("write matched a reads rule: %v", err)
	}
}

func TestOutage(t *testing.T) {
	p := startProxy(t, Options{})
	c := newContainer(t, cosmosClient(t, p, -1))
	ctx := context.Background()
	read := func() error {
		_, err := c.ReadItem(ctx, pk, "o1", nil)
		return err
	}
	if _, err := c.CreateItem(ctx, pk, doc("o1"), nil); err != nil {
		t.Fatal(err)
	}

	t.Run("unavailable", func(t *testing.T) {
		p.Reset()
		p.Outage(time.Hour, OutageUnavailable)
		for range 3 {
			if got := statusOf(read()); got != 503 {
				t.Fatalf("status %d during outage, want 503", got)
			}
		}
		p.ClearFaults()
		if err := read(); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
		if s := p.Stats(); s.DuringOutage != 3 || s.FaultStatuses[503] != 3 || s.ReadsForwarded != 1 {
			t.Errorf("during outage %d, 503s %d, forwarded %d; want 3, 3, 1", s.DuringOutage, s.FaultStatuses[503], s.ReadsForwarded)
		}
	})

	// azcosmos retries transport errors by itself, a second apart, even
	// with azcore's retries off; a raw client keeps the counts exact.
	hc := p.Client()
	defer hc.CloseIdleConnections()
	// Go's transport replays a GET once when a reused connection is
	// reset; fresh connections keep one attempt per call.
	fresh := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.RootCAs()}, DisableKeepAlives: true,
	}}
	rawReadWith := func(hc *http.Client) error {
		name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
		req, err := http.NewRequest(http.MethodGet, p.Endpoint()+"dbs/"+name+"/colls/orders/docs/o1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-documentdb-partitionkey", `["c1"]`)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	rawRead := func() error { return rawReadWith(hc) }
	if err := rawRead(); err != nil {
		t.Fatal(err)
	}

	t.Run("reset", func(t *testing.T) {
		p.Reset()
		p.Outage(time.Hour, OutageReset)
		for range 3 {
			if err := rawReadWith(fresh); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Fatalf("got %v during outage, want a reset", err)
			}
		}
		p.ClearFaults()
		if err := rawRead(); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
		if s := p.Stats(); s.DuringOutage != 3 || s.Faults[FaultOutage] != 3 || s.ReadsForwarded != 1 {
			t.Errorf("during outage %d, outage faults %d, forwarded %d; want 3, 3, 1",
				s.DuringOutage, s.Faults[FaultOutage], s.ReadsForwarded)
		}
	})

	t.Run("refused", func(t *testing.T) {
		p.Reset()
		p.Outage(time.Hour, OutageRefused)
		// A fresh connection: a pooled one may have gone idle on the server only after
		// the outage began, and the client can reuse it before the server drops it.
		if err := rawReadWith(fresh); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("got %v during outage, want connection refused", err)
		}
		p.ClearFaults()
		if err := rawRead(); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
		if s := p.Stats(); s.DuringOutage != 0 || s.ReadsForwarded != 1 {
			t.Errorf("during outage %d, forwarded %d; want 0 (refused before any request), 1", s.DuringOutage, s.ReadsForwarded)
		}
	})

	t.Run("ends by itself", func(t *testing.T) {
		p.Reset()
		p.Outage(20*time.Millisecond, OutageUnavailable)
		var err error
		for range 500 {
			if err = read(); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("outage never ended: %v", err)
		}
	})
}

func TestClassify(t *testing.T) {
	p := &Proxy{}
	for _, test := range []struct {
		method, path string
		header       map[string]string
		body         string
		kind         Kind
		id           string
	}{
		{"GET", "/", nil, "", Metadata, ""},
		{"GET", "//dbs/d/colls/c/pkranges", nil, "", Metadata, ""},
		{"POST", "/dbs", nil, `{"id":"d"}`, Metadata, ""},
		{"POST", "/dbs/d/colls/c/docs", nil, `{"id":"o1","customerId":"c"}`, Writes, "o1"},
		{"POST", "/dbs/d/colls/c/docs", map[string]string{"x-ms-documentdb-isquery": "True"}, `{}`, Reads, ""},
		{"POST", "/dbs/d/colls/c/docs", map[string]string{"Content-Type": "application/query+json"}, `{}`, Reads, ""},
		{"POST", "/dbs/d/colls/c/docs", map[string]string{"x-ms-cosmos-is-batch-request": "true"}, `[]`, Writes, ""},
		{"GET", "/dbs/d/colls/c/docs/o1", nil, "", Reads, ""},
		{"GET", "/dbs/d/colls/c/docs", nil, "", Reads, ""},
		{"PUT", "/dbs/d/colls/c/docs/o2", nil, `{"id":"o2"}`, Writes, "o2"},
		{"PATCH", "/dbs/d/colls/c/docs/o3", nil, `{}`, Writes, "o3"},
		{"DELETE", "/dbs/d/colls/c/docs/o4/", nil, "", Writes, "o4"},
		{"DELETE", "/dbs/d/colls/c", nil, "", Metadata, ""},
	} {
		r, err := http.NewRequest(test.method, "https://127.0.0.1"+test.path, strings.NewReader(test.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range test.header {
			r.Header.Set(k, v)
		}
		k, id := p.classify(r)
		if k != test.kind || id != test.id {
			t.Errorf("%s %s: %v %q, want %v %q", test.method, test.path, k, id, test.kind, test.id)
		}
		if b, _ := io.ReadAll(r.Body); string(b) != test.body {
			t.Errorf("%s %s: body after classify %q, want %q", test.method, test.path, b, test.body)
		}
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(100, 0, t0) // burst defaults to 10
	for i := range 10 {
		if ok, _ := b.take(t0); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	ok, wait := b.take(t0)
	if ok || wait != 10*time.Millisecond {
		t.Fatalf("empty bucket: ok %v wait %v, want refused with 10ms", ok, wait)
	}
	if ok, _ := b.take(t0.Add(10 * time.Millisecond)); !ok {
		t.Fatal("token not refilled after 1/rate")
	}
	// An idle bucket holds no more than its burst.
	later := t0.Add(time.Hour)
	n := 0
	for n < 100 {
		if ok, _ := b.take(later); !ok {
			break
		}
		n++
	}
	if n != 10 {
		t.Errorf("after an hour idle %d tokens, want 10", n)
	}
	b.set(0, 0, later)
	if ok, _ := b.take(later); !ok {
		t.Error("zero rate should not limit")
	}
}

func TestStartRejectsNonLoopback(t *testing.T) {
	for _, o := range []Options{
		{Target: "https://192.0.2.1/"},
		{Target: "https://127.0.0.1:1/", Listen: ":0"},
		{Target: "https://127.0.0.1:1/", Listen: "0.0.0.0:0"},
		{Target: "not a url"},
	} {
		if p, err := Start(context.Background(), o); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestScriptPanicsOnEmptyRule(t *testing.T) {
	p := startProxy(t, Options{})
	defer func() {
		if recover() == nil {
			t.Error("Script accepted a rule that does nothing")
		}
	}()
	p.Script(Rule{Match: Writes})
}
