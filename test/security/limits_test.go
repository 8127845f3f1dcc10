package security

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

// orderOfSize is a valid order padded with a note to exactly n bytes.
func orderOfSize(id string, n int) string {
	head := fmt.Sprintf(`{"id":%q,"customerId":"limits","items":[{"sku":"apple","quantity":1}],"note":"`, id)
	return head + strings.Repeat("x", n-len(head)-2) + `"}`
}

// TestBodyLimitIsASetting sets HTTP_MAX_BODY_BYTES to 4 KiB: a body one byte over is
// refused with 413 on both write paths, one at the limit is accepted.
func TestBodyLimitIsASetting(t *testing.T) {
	const limit = 4096
	s := stack.StartT(t, stack.Options{NoFulfilment: true, Settings: map[string]string{"HTTP_MAX_BODY_BYTES": strconv.Itoa(limit)}})
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tc := range []struct {
		method, path string
		size, want   int
	}{
		{http.MethodPost, "/api/orders", limit, http.StatusAccepted},
		{http.MethodPost, "/api/orders", limit + 1, http.StatusRequestEntityTooLarge},
		{http.MethodPut, "/api/customers/limits/orders/at-limit", limit, http.StatusOK},
		{http.MethodPut, "/api/customers/limits/orders/over-limit", limit + 1, http.StatusRequestEntityTooLarge},
	} {
		id := tc.path[strings.LastIndexByte(tc.path, '/')+1:]
		if tc.method == http.MethodPost {
			id = fmt.Sprintf("post-%d", tc.size)
		}
		body := orderOfSize(id, tc.size)
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with %d bytes (limit %d) = %d %.200s, want %d", tc.method, tc.path, len(body), limit, resp.StatusCode, b, tc.want)
		}
	}
}

// countingReader yields n bytes of a JSON string's content and counts what was taken.
type countingReader struct {
	n, read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.n.Load() - r.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), left)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.read.Add(k)
	return int(k), nil
}

// TestEnvelopeIsBoundedBeforeItIsRead streams a 256 MiB envelope straight to the handler
// (as a broken host might) with no declared length. The handler must answer 413 through
// the HTTP output after reading no more than its limit, 2 × HTTP_MAX_BODY_BYTES + 1 MiB:
// the client gets to send little more than that, and the handler's memory never holds
// the body.
func TestEnvelopeIsBoundedBeforeItIsRead(t *testing.T) {
	const maxBody = 4096
	const envelopeLimit = 2*maxBody + 1<<20
	const size = 256 << 20
	s := stack.StartT(t, stack.Options{NoFulfilment: true, Settings: map[string]string{"HTTP_MAX_BODY_BYTES": strconv.Itoa(maxBody)}})
	pid := s.Hosts[0].HandlerPID()
	addrs, err := ListeningSockets(pid)
	if err != nil || len(addrs) != 1 || !addrs[0].Addr().IsLoopback() {
		t.Fatalf("the handler's listening sockets: %v, %v", addrs, err)
	}
	peakBefore := peakRSS(t, pid)

	body := &countingReader{}
	body.n.Store(size)
	prefix := strings.NewReader(`{"Data":{"req":{"Method":"POST","Body":"`)
	req, err := http.NewRequest(http.MethodPost, "http://"+addrs[0].String()+"/ingest", io.MultiReader(prefix, body, strings.NewReader(`"}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the handler did not answer: %v", err)
	}
	defer resp.Body.Close()
	var reply struct {
		Outputs map[string]struct {
			StatusCode int `json:"statusCode"`
		} `json:"Outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if got := reply.Outputs["res"].StatusCode; resp.StatusCode != http.StatusOK || got != http.StatusRequestEntityTooLarge {
		t.Errorf("handler answered %d with an HTTP output of %d, want 200 carrying 413", resp.StatusCode, got)
	}
	sent := body.read.Load()
	// What the client managed to hand over: the limit, the socket buffers on both sides
	// and what the server drains before it closes, nowhere near the body's size.
	if sent > 32<<20 {
		t.Errorf("the client sent %d MiB of a %d MiB body before the handler answered; the limit is %d bytes", sent>>20, size>>20, envelopeLimit)
	}
	peakAfter := peakRSS(t, pid)
	if grew := peakAfter - peakBefore; grew > size/4 {
		t.Errorf("the handler's peak memory grew by %d MiB reading a %d MiB envelope", grew>>20, size>>20)
	}
	t.Logf("envelope of %d MiB against a limit of %d bytes: 413 after the client sent %.1f MiB; handler peak RSS %d MiB before, %d MiB after",
		size>>20, envelopeLimit, float64(sent)/(1<<20), peakBefore>>20, peakAfter>>20)
}

// peakRSS reads VmHWM, the process's peak resident memory, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
