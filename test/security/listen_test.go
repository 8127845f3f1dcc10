package security

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

func TestParseProcAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0050", "0.0.0.0:80"},
		{"0A00020F:C350", "15.2.0.10:50000"},
		{"00000000000000000000000001000000:0050", "[::1]:80"},
		{"00000000000000000000000000000000:1F90", "[::]:8080"},
		{"0000000000000000FFFF00000100007F:0050", "[::ffff:127.0.0.1]:80"},
	} {
		got, err := parseProcAddr(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007:1F90", "0100007F:XYZ", "01000000000000000000:0050"} {
		if got, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q) = %v, want an error", bad, got)
		}
	}
}

// TestHandlerListensOnLoopbackOnly reads the handler's listening sockets from /proc and
// requires each to be bound to 127.0.0.1: the host is its only caller and always dials
// 127.0.0.1, so nothing else on the network may reach it. The same holds after the host
// restarts a crashed handler.
func TestHandlerListensOnLoopbackOnly(t *testing.T) {
	s := stack.StartT(t, stack.Options{NoFulfilment: true})
	h := s.Hosts[0]
	first := checkLoopbackListener(t, h.HandlerPID())

	h.KillHandler()
	deadline := time.Now().Add(time.Minute)
	for pid := h.HandlerPID(); pid == 0 || pid == first.pid; pid = h.HandlerPID() {
		if time.Now().After(deadline) {
			t.Fatal("the host did not restart the handler within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := checkLoopbackListener(t, h.HandlerPID())
	t.Logf("handler pid %d listens on %v only; after a crash, pid %d on %v only", first.pid, first.addrs, second.pid, second.addrs)
}

type listening struct {
	pid   int
	addrs []netip.AddrPort
}

// checkLoopbackListener requires pid to listen on 127.0.0.1 only, and the socket found
// to be the handler's: it answers the host's readiness probe.
func checkLoopbackListener(t *testing.T, pid int) listening {
	t.Helper()
	addrs, err := ListeningSockets(pid)
	if err != nil {
		t.Fatalf("reading the listening sockets of pid %d: %v", pid, err)
	}
	if len(addrs) == 0 {
		t.Fatalf("pid %d listens on nothing", pid)
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, a := range addrs {
		if a.Addr() != loopback {
			t.Errorf("the handler listens on %v; it must bind 127.0.0.1 only", a)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + netip.AddrPortFrom(loopback, addrs[0].Port()).String() + "/")
	if err != nil {
		t.Fatalf("the socket found does not answer: %v", err)
	}
	defer resp.Body.Close()
	var probe struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&probe); err != nil || probe.Status != "ready" {
		t.Errorf("GET / on %v: status %q (%v), want the handler's readiness answer", addrs[0], probe.Status, err)
	}
	return listening{pid: pid, addrs: addrs}
}
