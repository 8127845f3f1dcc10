// Package cosmosstandin runs @vercel/cosmosdb-server, a Node.js
// implementation of the Cosmos DB REST protocol, as a child process on
// 127.0.0.1 so that tests and local runs can use the real azcosmos client
// without the Cosmos DB emulator.
//
// The stand-in keeps everything in memory, checks no signatures and
// enforces no request units. Put the faultproxy package in front of it to
// get throttling and faults.
//
// Known gaps of stand-in 1.0.1, as seen through azcosmos v1.5.0:
//   - Transactional batches fail with 500, and are not atomic: operations
//     before the failing one stay written.
//   - Every response charges 1 request unit, whatever the item size.
//   - Keys and signatures are not checked, so a wrong key goes unnoticed.
//   - A point read of a missing item answered 500; the launcher patches
//     that to 404 (see launcher.js).
package cosmosstandin

import (
	"bufio"
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EmulatorKey is the account key the Cosmos DB emulator publishes for
// local use. The stand-in accepts any key; this one is used so that the
// same configuration works against the real emulator.
const EmulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

// modulePath is where npm installs the stand-in, relative to the folder
// holding package.json.
const modulePath = "node_modules/@vercel/cosmosdb-server"

//go:embed launcher.js
var launcher string

// Options configures Start. The zero value starts the stand-in on a free
// port, finding node_modules from the working directory.
type Options struct {
	// RepoRoot is the folder holding node_modules. If empty, Start walks
	// up from the working directory to the first folder that has the
	// stand-in installed, so tests work from any package directory.
	RepoRoot string

	// Port is the TCP port on 127.0.0.1. Zero lets the kernel choose one.
	Port int

	// Logger receives the stand-in's own output: stderr (its stack traces
	// for 500 answers) at Warn, anything else at Debug. Nil discards it.
	Logger *slog.Logger
}

// Server is a running stand-in. Close stops it.
type Server struct {
	// Endpoint is the account endpoint, "https://127.0.0.1:PORT/".
	Endpoint string

	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{} // closed when the process has been reaped
	err    error         // Wait's result, readable once exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start launches the stand-in and returns once it answers the account
// request. ctx bounds only the start-up: the process runs until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("cosmosstandin: port %d out of range", opts.Port)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := findRoot(opts.RepoRoot)
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("cosmosstandin: node.js is required: %w", err)
	}

	// The launcher is passed inline so the package works from any working
	// directory; it loads the stand-in by absolute path for the same reason.
	cmd := exec.Command(node, "-e", launcher, "--",
		filepath.Join(root, modulePath), strconv.Itoa(opts.Port))
	cmd.Dir = root
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("cosmosstandin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("cosmosstandin: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("cosmosstandin: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cosmosstandin: starting node: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Go(func() { pipeLog(stderr, log, slog.LevelWarn) })

	ports := make(chan int, 1)
	readers.Go(func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			var hello struct{ Port int }
			if json.Unmarshal(sc.Bytes(), &hello) == nil && hello.Port > 0 {
				ports <- hello.Port
			} else {
				log.Debug("cosmos stand-in", "line", sc.Text())
			}
		}
		for sc.Scan() {
			log.Debug("cosmos stand-in", "line", sc.Text())
		}
	})
	go func() {
		// Wait closes the pipes, so it must come after the readers hit
		// EOF; it also means nothing is logged once Close has returned.
		readers.Wait()
		s.err = cmd.Wait()
		close(s.exited)
	}()

	var port int
	select {
	case port = <-ports:
	case <-s.exited:
		return nil, fmt.Errorf("cosmosstandin: node exited before listening: %v", s.err)
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("cosmosstandin: waiting for the stand-in: %w", ctx.Err())
	}
	s.Endpoint = fmt.Sprintf("https://127.0.0.1:%d/", port)
	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	log.Info("cosmos stand-in ready", "endpoint", s.Endpoint, "pid", cmd.Process.Pid)
	return s, nil
}

// StartT starts a stand-in for a test or benchmark and stops it in
// t.Cleanup. It fails the test if the stand-in cannot start; run
// `npm install` at the repository root first.
func StartT(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping the cosmos stand-in: %v", err)
		}
	})
	return s
}

// HTTPClient returns a client for raw requests to the stand-in. It skips
// certificate verification: the stand-in ships an expired certificate with
// no names, and the endpoint is always loopback.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: 64,
	}}
}

// Close stops the stand-in and waits for the process to exit. Everything
// it stored is lost. Close is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Closing stdin asks the launcher to exit; kill it if it does not.
		s.stdin.Close()
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		var exit *exec.ExitError
		if s.err != nil && !errors.As(s.err, &exit) {
			s.closeErr = fmt.Errorf("cosmosstandin: %w", s.err)
		}
	})
	return s.closeErr
}

// waitReady polls the account endpoint until it answers 200, because
// "listening" is reported before the first request is certain to succeed.
func (s *Server) waitReady(ctx context.Context) error {
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	var last error
	for range 100 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint, nil)
		if err != nil {
			return fmt.Errorf("cosmosstandin: %w", err)
		}
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("account request answered %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("cosmosstandin: not ready: %w (last error: %v)", ctx.Err(), last)
		case <-s.exited:
			return fmt.Errorf("cosmosstandin: node exited: %v", s.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("cosmosstandin: not ready after 100 attempts: %v", last)
}

// findRoot returns the folder whose node_modules holds the stand-in.
func findRoot(root string) (string, error) {
	if root != "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return "", fmt.Errorf("cosmosstandin: %w", err)
		}
		if !installed(abs) {
			return "", fmt.Errorf("cosmosstandin: %s not found under %s; run npm install", modulePath, abs)
		}
		return abs, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cosmosstandin: %w", err)
	}
	start := dir
	// Each step removes one path element, so the loop ends at the root.
	for {
		if installed(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cosmosstandin: %s not found above %s; run npm install at the repository root", modulePath, start)
		}
		dir = parent
	}
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, modulePath, "package.json"))
	return err == nil
}

func pipeLog(r io.Reader, log *slog.Logger, level slog.Level) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		log.Log(context.Background(), level, "cosmos stand-in", "line", sc.Text())
	}
}

// testWriter sends log output to the test log, so it shows only for
// failing or verbose tests.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
