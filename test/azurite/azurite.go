// Package azurite runs the queue service of Azurite, the Azure Storage emulator, as a child
// process on 127.0.0.1, so that tests and local runs exercise the real azqueue client and
// the real Storage protocol without an Azure account.
//
// Azurite comes from the npm package pinned in the repository's package-lock.json; run
// `npm ci` at the repository root (the Makefile does) before using this package. Only the
// queue service is started: the application uses no blobs or tables, and one service
// starts faster and needs one port.
//
// Azurite collects usage telemetry by default and sends it to Application Insights; it is
// always started with --disableTelemetry so that it never talks to anything but loopback.
package azurite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// AccountName and AccountKey are the development-storage credentials every Azurite
	// instance accepts; they are published by Microsoft and grant nothing elsewhere.
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

	// queueMain is the queue service's entry point inside the npm package (its
	// azurite-queue bin), relative to the repository root.
	queueMain = "node_modules/azurite/dist/src/queue/main.js"

	// readyTimeout bounds the wait for the port to accept connections. A cold start
	// loads a few hundred modules; it takes about a second on a laptop, much longer on a
	// loaded CI runner.
	readyTimeout = 30 * time.Second

	// stopGrace is how long Close lets Azurite shut down on SIGTERM (which saves an
	// on-disk database) before it kills the process group.
	stopGrace = 5 * time.Second

	// portAttempts bounds the retries when a port chosen for Port == 0 is taken by
	// someone else between probing it and Azurite binding it.
	portAttempts = 3

	// stderrTailLines is how much of Azurite's stderr a start-up error quotes.
	stderrTailLines = 20
)

// Options configures Start.
type Options struct {
	// RepoRoot is the repository root holding node_modules; required.
	RepoRoot string
	// Port is the queue port on 127.0.0.1; 0 picks a free one.
	Port int
	// Dir is the folder Azurite persists its data in, kept after Close so a later run
	// sees the same queues. "" keeps everything in memory and gives Azurite a fresh
	// temporary working folder that Close removes.
	Dir string
	// Logger receives Azurite's output: stderr at Warn, stdout at Debug. Nil discards it.
	Logger *slog.Logger
}

// Server is a running Azurite queue service. Close stops it.
type Server struct {
	// QueueEndpoint is the queue service URL of the development account, e.g.
	// http://127.0.0.1:PORT/devstoreaccount1.
	QueueEndpoint string
	// ConnectionString is a storage connection string for the development account whose
	// QueueEndpoint points at this server, usable as AzureWebJobsStorage.
	ConnectionString string

	cmd     *exec.Cmd
	log     *slog.Logger
	stderr  *lineLog
	tempDir string        // removed on Close; "" when the caller chose Dir
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // Wait's result, readable once exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start launches Azurite's queue service and returns once its port accepts TCP
// connections. ctx bounds only the start-up: the process runs until Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.RepoRoot == "" {
		return nil, errors.New("azurite: Options.RepoRoot is required")
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("azurite: port %d out of range", o.Port)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(o.RepoRoot)
	if err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	script := filepath.Join(root, queueMain)
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("azurite: %s not found; run `npm ci --no-audit --no-fund` in %s: %w", queueMain, root, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("azurite: node.js is required: %w", err)
	}

	var lastErr error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		port := o.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("azurite: choosing a port: %w", err)
			}
		} else if err := checkFree(port); err != nil {
			// Otherwise the readiness probe would connect to whoever holds the port
			// and report success before Azurite fails to bind it.
			return nil, fmt.Errorf("azurite: port %d: %w", port, err)
		}
		s, err := launch(ctx, node, script, port, o.Dir, log)
		if err == nil {
			return s, nil
		}
		lastErr = err
		// Another process may grab a probed port before Azurite binds it; only then
		// is a retry with a new port worth it.
		if o.Port != 0 || !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
		log.Debug("azurite port taken; retrying with another", "port", port, "attempt", attempt)
	}
	return nil, lastErr
}

// StartT starts Azurite for a test or benchmark and closes it in t.Cleanup. It fails the
// test if Azurite cannot start. A nil Logger sends Azurite's warnings to the test log.
func StartT(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping azurite: %v", err)
		}
	})
	return s
}

var errPortTaken = errors.New("port already in use")

func launch(ctx context.Context, node, script string, port int, dir string, log *slog.Logger) (*Server, error) {
	args := []string{script,
		"--queueHost", "127.0.0.1",
		"--queuePort", strconv.Itoa(port),
		"--skipApiVersionCheck", // the SDK may be newer than the emulator
		"--loose",               // ignore headers the emulator does not implement
		"--silent",              // no access log
		"--disableTelemetry",
	}
	s := &Server{log: log, exited: make(chan struct{})}
	workDir := dir
	if dir == "" {
		// Azurite refuses --location together with --inMemoryPersistence and then uses
		// its working folder as its workspace; a temporary one keeps the repository
		// clean.
		tmp, err := os.MkdirTemp("", "azurite-")
		if err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		s.tempDir, workDir = tmp, tmp
		args = append(args, "--inMemoryPersistence")
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		workDir = abs
		args = append(args, "--location", abs)
	}

	cmd := exec.Command(node, args...)
	cmd.Dir = workDir
	// A process group of its own lets Close stop Azurite and anything it spawned, and
	// keeps a Ctrl-C aimed at the parent from killing it before Close runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.stderr = &lineLog{log: log, level: slog.LevelWarn, keep: stderrTailLines}
	cmd.Stderr = s.stderr
	announced := make(chan struct{})
	cmd.Stdout = &lineLog{log: log, level: slog.LevelDebug,
		watch: "listens on http://127.0.0.1:" + strconv.Itoa(port), seen: announced}
	// Wait would otherwise block on the pipes for as long as any descendant holds them.
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("azurite: starting node: %w", err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.waitListening(ctx, addr, announced); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.QueueEndpoint = "http://" + addr + "/" + AccountName
	s.ConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + AccountName +
		";AccountKey=" + AccountKey + ";QueueEndpoint=" + s.QueueEndpoint + ";"
	log.Info("azurite queue service ready", "queue_endpoint", s.QueueEndpoint, "pid", cmd.Process.Pid)
	return s, nil
}

// waitListening returns once addr accepts a TCP connection and Azurite has said that it
// listens there, or fails when Azurite exits, ctx ends or readyTimeout passes. Azurite
// binds the port only once its stores are open, so an accepted connection means it is
// ready to serve; its own announcement rules out a connection accepted by another process
// that took the port first.
func (s *Server) waitListening(ctx context.Context, addr string, announced <-chan struct{}) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	d := net.Dialer{Timeout: time.Second}
	accepted := false
	wake := announced // wakes the wait below once, then only the ticker paces retries
	for {
		select {
		case <-announced:
			if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
				_ = conn.Close()
				return nil
			}
		default:
			if !accepted {
				if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
					_ = conn.Close()
					accepted = true
				}
			}
		}
		select {
		case <-s.exited:
			return s.exitError()
		case <-ctx.Done():
			return fmt.Errorf("azurite: waiting for %s: %w%s", addr, ctx.Err(), s.stderrSuffix())
		case <-deadline.C:
			if accepted {
				return fmt.Errorf("azurite: %s accepts connections but Azurite never said it listens there; another process may hold the port%s", addr, s.stderrSuffix())
			}
			return fmt.Errorf("azurite: %s did not accept connections within %v%s", addr, readyTimeout, s.stderrSuffix())
		case <-tick.C:
		case <-wake:
			wake = nil
		}
	}
}

func (s *Server) exitError() error {
	tail := s.stderr.tail()
	err := fmt.Errorf("azurite: exited before listening (%v)%s", s.waitErr, s.stderrSuffix())
	if strings.Contains(tail, "EADDRINUSE") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

func (s *Server) stderrSuffix() string {
	if tail := s.stderr.tail(); tail != "" {
		return "; stderr:\n" + tail
	}
	return ""
}

// Close stops Azurite, waits for it to exit and removes the temporary folder if Start
// made one. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// The group id is Azurite's pid; once Azurite has been reaped that id may be
		// reused, so the group is signalled only while Azurite is still running.
		pgid := -s.cmd.Process.Pid
		select {
		case <-s.exited:
		default:
			// SIGTERM lets Azurite close its stores (and save an on-disk database) first.
			if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
				s.log.Warn("azurite: SIGTERM failed", "err", err)
			}
			select {
			case <-s.exited:
			case <-time.After(stopGrace):
				s.log.Warn("azurite did not stop on SIGTERM; killing its process group", "pid", s.cmd.Process.Pid)
				if err := syscall.Kill(pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					s.closeErr = fmt.Errorf("azurite: killing process group: %w", err)
				}
				<-s.exited
			}
		}
		var exit *exec.ExitError
		if s.waitErr != nil && !errors.As(s.waitErr, &exit) && s.closeErr == nil {
			s.closeErr = fmt.Errorf("azurite: %w", s.waitErr)
		}
		s.removeTemp()
	})
	return s.closeErr
}

func (s *Server) removeTemp() {
	if s.tempDir == "" {
		return
	}
	if err := os.RemoveAll(s.tempDir); err != nil {
		s.log.Warn("azurite: removing the temporary folder", "dir", s.tempDir, "err", err)
	}
}

// freePort asks the kernel for a free loopback port. Azurite binds it after the probe's
// listener is closed, so another process could take it in between; Start retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkFree reports whether port can be bound on 127.0.0.1 right now.
func checkFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// lineLog is an io.Writer that logs each complete line of a child's output. When keep is
// set it remembers the last keep lines for error messages; when watch is set it closes
// seen at the first line containing watch.
type lineLog struct {
	log   *slog.Logger
	level slog.Level
	keep  int
	watch string
	seen  chan struct{}

	mu    sync.Mutex
	buf   []byte
	lines []string
}

func (w *lineLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line == "" {
			continue
		}
		w.log.Log(context.Background(), w.level, "azurite", "line", line)
		if w.watch != "" && strings.Contains(line, w.watch) {
			close(w.seen)
			w.watch = ""
		}
		if w.keep > 0 {
			w.lines = append(w.lines, line)
			if len(w.lines) > w.keep {
				w.lines = w.lines[len(w.lines)-w.keep:]
			}
		}
	}
	return len(p), nil
}

// tail returns the remembered lines plus any unterminated last line.
func (w *lineLog) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := strings.Join(w.lines, "\n")
	if rest := strings.TrimSpace(string(w.buf)); rest != "" {
		if out != "" {
			out += "\n"
		}
		out += rest
	}
	return out
}

// testWriter sends log output to t.Log, so it appears with the test that produced it.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
