// Package faultproxy is an HTTPS reverse proxy for tests and benchmarks
// that stands between a Cosmos DB client and a Cosmos endpoint (usually
// the cosmosstandin package) and behaves like a container with
// provisioned throughput: writes beyond a shared token bucket are answered
// 429 with Cosmos' headers. On top of that a test scripts faults (status
// codes, latency, resets, outages) and reads back counts of everything
// the proxy saw.
//
// The proxy rewrites the account metadata so that clients, which send
// every request after the first to the address the account advertises,
// keep coming through the proxy.
//
// Both the proxy and its target must be on loopback: the proxy presents a
// self-signed certificate and does not verify the target's.
//
// Known gaps against the real service:
//   - One token bucket stands for the whole container. Cosmos divides
//     throughput between physical partitions, so a hot partition key is
//     throttled there well below the container's rate, and not here.
//   - Every write costs one token whatever its size, and reads have a
//     bucket of their own; in Cosmos both draw request units from the
//     same budget.
//   - The retry hint is the time until the next token. Concurrent clients
//     throttled together all get the same hint and come back together;
//     Cosmos's hints behave much the same, but their values differ.
//   - HTTP/1.1 only, as resets need to hijack the connection.
//   - Requests refused during an OutageRefused never reach the proxy and
//     are not counted.
package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind classifies requests. Each request has exactly one kind; a Rule
// matches any combination of them.
type Kind uint8

const (
	// Metadata is everything but documents: the account, databases,
	// containers, partition key ranges, and creating or deleting them.
	Metadata Kind = 1 << iota
	// Reads are document point reads, read feeds and queries.
	Reads
	// Writes are document creates, upserts, replaces, patches, deletes
	// and batches.
	Writes

	Any = Metadata | Reads | Writes
)

func (k Kind) String() string {
	var names []string
	for _, n := range []struct {
		k    Kind
		name string
	}{{Metadata, "metadata"}, {Reads, "reads"}, {Writes, "writes"}} {
		if k&n.k != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Options configures Start.
type Options struct {
	// Target is the Cosmos endpoint to forward to, e.g. a stand-in's
	// Endpoint. It must be on loopback.
	Target string
	// Listen is the address to listen on; it must be on loopback.
	// Default "127.0.0.1:0", a free port.
	Listen string

	// WritesPerSecond is the rate of the write token bucket; zero means
	// no limit. WriteBurst is its capacity; zero means a tenth of a
	// second's worth, at least 1 (see SetRate for why).
	WritesPerSecond float64
	WriteBurst      float64
	// ReadsPerSecond and ReadBurst do the same for reads and queries.
	// Metadata requests are never rate limited.
	ReadsPerSecond float64
	ReadBurst      float64

	// BucketWidth is the interval of Stats.Series; default 100 ms.
	BucketWidth time.Duration

	// Logger receives start, stop, outage and upstream error messages.
	// Nil discards them.
	Logger *slog.Logger

	// keepAccountEndpoints turns the metadata rewrite off, so a test can
	// show that clients bypass the proxy without it.
	keepAccountEndpoints bool
}

// Proxy is a running fault proxy. Its methods are safe for concurrent
// use.
type Proxy struct {
	target      *url.URL
	targetHost  string // host:port, for rewriting absolute URLs
	endpoint    string
	addr        string // listen address, fixed after the first listen
	log         *slog.Logger
	rp          *httputil.ReverseProxy
	transport   *http.Transport
	srv         *http.Server
	tlsConfig   *tls.Config
	roots       *x509.CertPool
	width       time.Duration
	keepAccount bool
	done        chan struct{} // closed by Close, to cut sleeps short

	writes, reads *bucket
	stats         counters

	mu           sync.Mutex
	closed       bool
	ln           net.Listener
	refusing     bool // listener closed by an OutageRefused
	conns        map[net.Conn]http.ConnState
	rules        []*scripted
	latency      time.Duration
	latencyUntil time.Time
	outageMode   OutageMode
	outageUntil  time.Time
	outageTimer  *time.Timer
	outageGen    int
}

// Start listens and serves until Close. ctx bounds only the listen call.
func Start(ctx context.Context, opts Options) (*Proxy, error) {
	target, err := url.Parse(opts.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an absolute URL", opts.Target)
	}
	if !loopback(target.Hostname()) {
		return nil, fmt.Errorf("faultproxy: target %q is not on loopback", opts.Target)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen address: %w", err)
	}
	if !loopback(host) {
		return nil, fmt.Errorf("faultproxy: listen address %q is not on loopback", listen)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	width := opts.BucketWidth
	if width <= 0 {
		width = 100 * time.Millisecond
	}

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	cert, roots, err := selfSigned(addr.IP)
	if err != nil {
		ln.Close()
		return nil, err
	}

	now := time.Now()
	p := &Proxy{
		target:      target,
		targetHost:  target.Host,
		endpoint:    "https://" + addr.String() + "/",
		addr:        addr.String(),
		log:         log,
		roots:       roots,
		width:       width,
		keepAccount: opts.keepAccountEndpoints,
		done:        make(chan struct{}),
		writes:      newBucket(opts.WritesPerSecond, opts.WriteBurst, now),
		reads:       newBucket(opts.ReadsPerSecond, opts.ReadBurst, now),
		conns:       map[net.Conn]http.ConnState{},
	}
	p.stats.reset(now, width)
	// HTTP/1.1 only: resets hijack the connection, which HTTP/2 cannot.
	// The Cosmos gateway protocol is HTTP/1.1 as well.
	p.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	p.transport = &http.Transport{
		// No Proxy: the target is loopback and must never be reached
		// through whatever proxy the environment names.
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		// Verification is off because Start accepts only loopback targets
		// and the stand-in's certificate is self-signed and expired.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		TLSHandshakeTimeout: 5 * time.Second,
		// Enough idle connections that a burst of concurrent clients
		// never pays a handshake each; idle ones are dropped before the
		// stand-in's 120 s keep-alive timeout, so the proxy never writes
		// to a socket the other side is closing.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
		},
		Transport:      p.transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.trackConn,
		// Resets and refused outages make the server log handshake and
		// read errors by design; they are only interesting when debugging.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	log.Info("fault proxy listening", "endpoint", p.endpoint, "target", opts.Target,
		"writesPerSecond", opts.WritesPerSecond, "readsPerSecond", opts.ReadsPerSecond)
	return p, nil
}

// Endpoint is the proxy's account endpoint, "https://127.0.0.1:PORT/".
// Give it to clients in place of the target's.
func (p *Proxy) Endpoint() string { return p.endpoint }

// RootCAs holds the proxy's self-signed certificate, for clients that
// verify it rather than skipping verification.
func (p *Proxy) RootCAs() *x509.CertPool { return p.roots }

// Client returns an HTTP client that trusts the proxy's certificate.
func (p *Proxy) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: p.roots},
		MaxIdleConnsPerHost: 64,
	}}
}

// SetRate changes the write token bucket: perSecond tokens a second, burst
// tokens at most. A zero rate lifts the limit; a zero burst means a tenth
// of a second's worth, at least 1. That default is stricter than Cosmos,
// which accounts per second, so pacing that passes here passes there.
func (p *Proxy) SetRate(perSecond, burst float64) {
	p.writes.set(perSecond, burst, time.Now())
}

// SetReadRate changes the read token bucket, like SetRate.
func (p *Proxy) SetReadRate(perSecond, burst float64) {
	p.reads.set(perSecond, burst, time.Now())
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats { return p.stats.snapshot(time.Now()) }

// Reset zeroes the counters, restarts the time series and fills the token
// buckets, so one test's traffic does not spill into the next. Scripted
// faults are kept; see ClearFaults.
func (p *Proxy) Reset() {
	now := time.Now()
	p.stats.reset(now, p.width)
	p.writes.fill(now)
	p.reads.fill(now)
}

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.endOutageLocked()
	p.mu.Unlock()
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	p.log.Info("fault proxy stopped", "endpoint", p.endpoint)
	return err
}

// ServeHTTP applies, in order: outage, added latency, the fault script,
// the token bucket; then forwards what is left.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k, id := p.classify(r)
	p.stats.request(k, id)
	now := time.Now()

	if mode, ok := p.outageAt(now); ok {
		if mode == OutageUnavailable {
			p.stats.fault(k, FaultOutage, http.StatusServiceUnavailable, now)
			p.answer(w, http.StatusServiceUnavailable, nil, "")
			return
		}
		p.stats.fault(k, FaultOutage, 0, now)
		reset(w)
		return
	}
	if d := p.latencyAt(now); d > 0 {
		p.stats.fault(k, FaultLatency, 0, now)
		if !p.sleep(r.Context(), d) {
			return
		}
	}
	if rule := p.nextFault(r, k, now); rule != nil {
		if rule.Latency > 0 {
			p.stats.fault(k, FaultLatency, 0, time.Now())
			if !p.sleep(r.Context(), rule.Latency) {
				return
			}
		}
		switch {
		case rule.Reset == ResetBeforeForward:
			p.stats.fault(k, FaultReset, 0, time.Now())
			reset(w)
			return
		case rule.Reset == ResetMidResponse:
			p.stats.fault(k, FaultTruncate, 0, time.Now())
			p.forwardTruncated(w, r, k)
			return
		case rule.Status != 0:
			p.stats.fault(k, FaultStatus, rule.Status, time.Now())
			p.answer(w, rule.Status, rule.Headers, rule.Body)
			return
		}
	}

	b := p.writes
	if k == Reads {
		b = p.reads
	}
	if k != Metadata {
		if ok, wait := b.take(time.Now()); !ok {
			p.throttle(w, k, wait)
			return
		}
	}
	p.stats.forwarded(k, time.Now())
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), kindKey{}, k)))
}

type kindKey struct{}

// throttle answers like a container out of request units. The hint is the
// time until the bucket has a token again, rounded up to a millisecond.
func (p *Proxy) throttle(w http.ResponseWriter, k Kind, wait time.Duration) {
	p.stats.throttled(k, time.Now())
	ms := max(1, (wait+time.Millisecond-1)/time.Millisecond)
	p.answer(w, http.StatusTooManyRequests, map[string]string{
		"x-ms-retry-after-ms": strconv.FormatInt(int64(ms), 10),
		"x-ms-substatus":      "3200",
	}, `{"code":"TooManyRequests","message":"Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later."}`)
}

// answer writes a response of the proxy's own, shaped like Cosmos': JSON
// body with code and message, activity id and request charge.
func (p *Proxy) answer(w http.ResponseWriter, status int, headers map[string]string, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-activity-id", activityID())
	h.Set("x-ms-request-charge", "0")
	for k, v := range headers {
		h.Set(k, v)
	}
	if body == "" {
		b, _ := json.Marshal(map[string]string{
			"code":    errorCode(status),
			"message": fmt.Sprintf("Injected by the fault proxy: %d %s.", status, http.StatusText(status)),
		})
		body = string(b)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// errorCode is the "code" Cosmos puts in the body for a status.
func errorCode(status int) string {
	switch status {
	case 400:
		return "BadRequest"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "NotFound"
	case 408:
		return "RequestTimeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 412:
		return "PreconditionFailed"
	case 413:
		return "RequestEntityTooLarge"
	case 429:
		return "TooManyRequests"
	case 449:
		return "RetryWith"
	case 500:
		return "InternalServerError"
	case 503:
		return "ServiceUnavailable"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// sleep waits d unless the request or the proxy ends first.
func (p *Proxy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.done:
		return false
	}
}

// forwardTruncated forwards a request, then sends the client the status,
// headers and half of the body before closing the connection.
func (p *Proxy) forwardTruncated(w http.ResponseWriter, r *http.Request, k Kind) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = ""
	p.stats.forwarded(k, time.Now())
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.upstreamError(w, r, err)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Warn("truncating a response: hijack failed", "err", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		resp.Status, len(body))
	buf.Write(body[:len(body)/2])
	buf.Flush()
}

// reset drops the connection with a TCP RST and no response.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Cannot happen over HTTP/1.1; panicking with ErrAbortHandler
		// still makes the server drop the connection.
		panic(http.ErrAbortHandler)
	}
	abort(conn)
}

// abort closes a connection with a TCP RST rather than a FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}

// modifyResponse points absolute URLs of the target at the proxy, in the
// headers of every response and in the bodies of metadata responses.
// Document bodies are left alone: they hold user data.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	p.stats.response(resp.StatusCode)
	if p.keepAccount {
		return nil
	}
	for _, name := range []string{"Content-Location", "Location"} {
		if v := resp.Header.Get(name); v != "" {
			resp.Header.Set(name, p.rewriteURLs(v))
		}
	}
	if k, _ := resp.Request.Context().Value(kindKey{}).(Kind); k != Metadata {
		return nil
	}
	if resp.Header.Get("Content-Encoding") != "" {
		p.log.Warn("metadata response is encoded; absolute URLs left as they are", "path", resp.Request.URL.Path)
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if strings.Trim(resp.Request.URL.Path, "/") == "" && resp.StatusCode == http.StatusOK {
		if rewritten, err := p.rewriteAccount(body); err == nil {
			body = rewritten
			p.stats.accountRewrite()
		} else {
			p.log.Warn("account metadata not rewritten; clients will bypass the proxy", "err", err)
		}
	} else {
		body = []byte(p.rewriteURLs(string(body)))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// rewriteAccount sets every location in the account metadata to the
// proxy, whatever host the target advertises (it may name localhost while
// the proxy was given 127.0.0.1, or a port remapped on the way).
func (p *Proxy) rewriteAccount(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var account map[string]any
	if err := dec.Decode(&account); err != nil {
		return nil, fmt.Errorf("decoding account metadata: %w", err)
	}
	found := false
	for _, key := range []string{"writableLocations", "readableLocations"} {
		locations, _ := account[key].([]any)
		for _, l := range locations {
			if loc, ok := l.(map[string]any); ok {
				loc["databaseAccountEndpoint"] = p.endpoint
				found = true
			}
		}
	}
	if !found {
		return nil, errors.New("account metadata lists no locations")
	}
	return json.Marshal(account)
}

func (p *Proxy) rewriteURLs(s string) string {
	return strings.ReplaceAll(s, "://"+p.targetHost, "://"+strings.TrimSuffix(strings.TrimPrefix(p.endpoint, "https://"), "/"))
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	p.stats.upstreamError()
	p.stats.response(http.StatusBadGateway)
	p.log.Warn("upstream request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	p.answer(w, http.StatusBadGateway, nil, "")
}

// maxBodyPeek bounds how much of a write's body is buffered to find the
// document id; Cosmos refuses items over 2 MB anyway.
const maxBodyPeek = 4 << 20

// classify returns the request's kind and, for writes, the document id.
func (p *Proxy) classify(r *http.Request) (Kind, string) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 5 || len(segs) > 6 || segs[0] != "dbs" || segs[2] != "colls" || segs[4] != "docs" {
		return Metadata, ""
	}
	if len(segs) == 6 {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return Reads, ""
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			return Writes, segs[5]
		}
		return Metadata, ""
	}
	switch r.Method {
	case http.MethodGet:
		return Reads, ""
	case http.MethodPost:
		if isTrue(r.Header.Get("x-ms-documentdb-isquery")) ||
			strings.HasPrefix(r.Header.Get("Content-Type"), "application/query+json") {
			return Reads, ""
		}
		if isTrue(r.Header.Get("x-ms-cosmos-is-batch-request")) {
			return Writes, ""
		}
		return Writes, bodyID(r)
	}
	return Metadata, ""
}

func isTrue(v string) bool { return strings.EqualFold(v, "true") }

// bodyID reads the "id" of a document being created or upserted and
// leaves the body readable for forwarding.
func bodyID(r *http.Request) string {
	if r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxBodyPeek+1))
	if err != nil || len(buf) > maxBodyPeek {
		// Forward what was read followed by the rest, unparsed.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return ""
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(buf))
	// Rules' If hooks read the body too; GetBody hands each a fresh reader.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	var doc struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(buf, &doc) != nil {
		return ""
	}
	return doc.ID
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func activityID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// trackConn keeps the open connections, so a refused outage can drop the
// idle ones: a client would otherwise keep using them and never see the
// refusal.
func (p *Proxy) trackConn(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	case http.StateIdle:
		if p.refusing {
			// A connection that was busy when the outage began goes idle now; a
			// refusing server has nobody to keep it open for.
			abort(c)
			return
		}
		p.conns[c] = state
	default:
		p.conns[c] = state
	}
}

// serveLocked serves on ln in the background. p.mu must be held.
func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	tl := tls.NewListener(ln, p.tlsConfig)
	go func() {
		if err := p.srv.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("fault proxy stopped serving", "err", err)
		}
	}()
}

// refuseLocked closes the listener and the idle connections. p.mu must
// be held.
func (p *Proxy) refuseLocked() {
	if p.refusing || p.closed {
		return
	}
	p.refusing = true
	p.ln.Close()
	for c, state := range p.conns {
		if state == http.StateIdle {
			abort(c)
		}
	}
}

// reopenLocked listens again on the same address after a refused
// outage. p.mu must be held.
func (p *Proxy) reopenLocked() {
	p.refusing = false
	if p.closed {
		return
	}
	// The port was ours a moment ago, but another process may take it in
	// between; a few attempts cover a slow socket release.
	var err error
	for range 20 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serveLocked(ln)
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.log.Error("could not listen again after a refused outage; the proxy stays down", "addr", p.addr, "err", err)
}
