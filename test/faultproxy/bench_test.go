package faultproxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProxy measures requests per second through the proxy, with a
// Go upstream (the proxy's own cost) and with the Node stand-in (what
// tests get), against the stand-in alone for comparison.
func BenchmarkProxy(b *testing.B) {
	goUpstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"o1","customerId":"c1","total":1}`)
	}))
	defer goUpstream.Close()

	// A document for the stand-in cases to read.
	seed(b, standIn.Endpoint)

	const path = "dbs/bench/colls/orders/docs/o1"
	for _, c := range []struct {
		name   string
		target string
		direct bool
	}{
		{"proxy-go-upstream", goUpstream.URL + "/", false},
		{"proxy-stand-in", standIn.Endpoint, false},
		{"stand-in-direct", standIn.Endpoint, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			endpoint := c.target
			tc := &tls.Config{InsecureSkipVerify: true} // loopback targets only
			if !c.direct {
				p, err := Start(context.Background(), Options{Target: c.target})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				endpoint = p.Endpoint()
				tc = &tls.Config{RootCAs: p.RootCAs()}
			}
			tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, endpoint+path, nil)
					req.Header.Set("x-ms-documentdb-partitionkey", `["c1"]`)
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// seed creates database bench, container orders and document o1 with raw
// requests; the stand-in checks no signatures.
func seed(b *testing.B, endpoint string) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	for _, r := range []struct{ path, body string }{
		{"dbs", `{"id":"bench"}`},
		{"dbs/bench/colls", `{"id":"orders","partitionKey":{"paths":["/customerId"],"kind":"Hash"}}`},
		{"dbs/bench/colls/orders/docs", `{"id":"o1","customerId":"c1","total":1}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, endpoint+r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-ms-documentdb-partitionkey", `["c1"]`)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// 409 means an earlier run of the benchmark seeded it already.
		if resp.StatusCode != 201 && resp.StatusCode != 409 {
			b.Fatalf("seeding %s: status %d", r.path, resp.StatusCode)
		}
	}
}
