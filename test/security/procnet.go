// Package security holds the security tests: the handler listens on loopback only, HTTP
// functions need keys, bodies are bounded before they are read, secrets stay out of logs
// and responses, and the emulator key is refused for a real account. ListeningSockets is
// exported for the bad-input corpus, which talks to the handler directly.
package security

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ListeningSockets returns the local addresses of the TCP sockets process pid listens
// on, read from /proc: the inodes of its socket descriptors, matched against the
// listening entries of /proc/<pid>/net/tcp and tcp6. It reads files only; it opens no
// connection.
func ListeningSockets(pid int) ([]netip.AddrPort, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, table := range []string{"tcp", "tcp6"} {
		entries, err := listeners(filepath.Join("/proc", strconv.Itoa(pid), "net", table))
		if err != nil {
			return nil, err
		}
		for inode, addr := range entries {
			if inodes[inode] {
				out = append(out, addr)
			}
		}
	}
	return out, nil
}

// socketInodes returns the inodes of the sockets pid has open.
func socketInodes(pid int) (map[string]bool, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return inodes, nil
}

// tcpListen is the st column's value for a listening socket.
const tcpListen = "0A"

// listeners reads one /proc/net/tcp-format table and returns its listening sockets by
// inode.
func listeners(path string) (map[string]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]netip.AddrPort{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
		cols := strings.Fields(sc.Text())
		if len(cols) < 10 || cols[3] != tcpListen {
			continue
		}
		addr, err := parseProcAddr(cols[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[cols[9]] = addr
	}
	return out, sc.Err()
}

// parseProcAddr reads "0100007F:1F90" (IPv4) or a 32-digit IPv6 address and a port, in
// the kernel's notation: the address as 32-bit words in host (little-endian) order, the
// port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q has no port", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q is not 4 or 16 bytes of hex", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port in %q: %w", s, err)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
