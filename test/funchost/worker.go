package funchost

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// worker is one run of the handler process.
type worker struct {
	cmd    *exec.Cmd
	port   int
	id     string
	exited chan struct{} // closed when the process has exited
	err    error         // the exit error, valid after exited is closed
}

func (w *worker) baseURL() string { return "http://127.0.0.1:" + strconv.Itoa(w.port) }

// The host's readiness probe: any HTTP response within 30 s, tried every 25 ms.
const (
	initializationTimeout = 30 * time.Second
	probeInterval         = 25 * time.Millisecond
)

var envToken = regexp.MustCompile(`%([^%]+)%`)

// expandEnv replaces %NAME% tokens as the host does; an unset name becomes "".
func expandEnv(s string, env map[string]string) string {
	return envToken.ReplaceAllStringFunc(s, func(tok string) string {
		return env[tok[1:len(tok)-1]]
	})
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1, as the host does.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// executable resolves defaultExecutablePath: relative to the worker directory when a file
// is there, otherwise as a command on PATH.
func (h *Host) executable() (string, error) {
	dir := h.root
	if h.cfg.WorkerDirectory != "" {
		dir = filepath.Join(h.root, h.cfg.WorkerDirectory)
	}
	p := expandEnv(h.cfg.ExecutablePath, h.env)
	if !filepath.IsAbs(p) {
		full := filepath.Join(dir, p)
		if st, err := os.Stat(full); err == nil && !st.IsDir() {
			return full, nil
		}
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("the custom handler executable %s was not found under %s or on PATH", p, dir)
		}
		return found, nil
	}
	return p, nil
}

// commandLine builds the argument string the way the host's process factory does: each
// of arguments after a space, then defaultWorkerPath (resolved like the executable,
// against the worker directory) in double quotes, then each of workerArguments. %NAME%
// tokens are replaced from the environment, the worker's own variables included, so
// %FUNCTIONS_CUSTOMHANDLER_PORT% works; tokens for unset names are removed.
func (h *Host) commandLine(workerEnv map[string]string) string {
	var b strings.Builder
	for _, a := range h.cfg.Arguments {
		b.WriteString(" " + a)
	}
	if p := h.cfg.WorkerPath; p != "" {
		if !filepath.IsAbs(p) {
			dir := h.root
			if h.cfg.WorkerDirectory != "" {
				dir = filepath.Join(h.root, h.cfg.WorkerDirectory)
			}
			p = filepath.Join(dir, p)
		}
		b.WriteString(` "` + p + `"`)
	}
	for _, a := range h.cfg.WorkerArguments {
		b.WriteString(" " + a)
	}
	env := maps.Clone(h.env)
	maps.Copy(env, workerEnv)
	return expandEnv(b.String(), env)
}

// splitCommandLine splits an argument string into argv as .NET's Process does on Unix,
// with the Windows rules: spaces and tabs separate arguments unless inside double
// quotes, backslashes before a quote escape it, and "" inside quotes is a literal quote.
// So an argument holding a space reaches the handler as two.
func splitCommandLine(s string) []string {
	var args []string
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		var cur strings.Builder
		inQuotes := false
	arg:
		for i < len(s) {
			backslashes := 0
			for i < len(s) && s[i] == '\\' {
				i++
				backslashes++
			}
			if backslashes > 0 {
				if i >= len(s) || s[i] != '"' {
					cur.WriteString(strings.Repeat(`\`, backslashes))
				} else {
					cur.WriteString(strings.Repeat(`\`, backslashes/2))
					if backslashes%2 != 0 {
						cur.WriteByte('"')
						i++
					}
				}
				continue
			}
			switch c := s[i]; {
			case c == '"':
				if inQuotes && i+1 < len(s) && s[i+1] == '"' {
					cur.WriteByte('"')
					i++
				} else {
					inQuotes = !inQuotes
				}
				i++
			case (c == ' ' || c == '\t') && !inQuotes:
				break arg
			default:
				cur.WriteByte(c)
				i++
			}
		}
		args = append(args, cur.String())
	}
	return args
}

// startWorker launches the handler with the host's environment and waits for it to
// answer the readiness probe.
func (h *Host) startWorker(ctx context.Context) (*worker, error) {
	exe, err := h.executable()
	if err != nil {
		return nil, err
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	w := &worker{port: port, id: newGUID(), exited: make(chan struct{})}
	workerEnv := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT":      strconv.Itoa(port),
		"FUNCTIONS_HTTPWORKER_PORT":         strconv.Itoa(port),
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID": w.id,
		"FUNCTIONS_HTTPWORKER_ID":           w.id,
		"FUNCTIONS_APP_ROOT_PATH":           h.root,
	}
	args := splitCommandLine(h.commandLine(workerEnv))
	cmd := exec.Command(exe, args...)
	cmd.Dir = h.root
	if h.cfg.WorkingDirectory != "" {
		cmd.Dir = filepath.Join(h.root, h.cfg.WorkingDirectory)
	}
	env := make([]string, 0, len(h.env)+5)
	for k, v := range h.env {
		env = append(env, k+"="+v)
	}
	for k, v := range workerEnv {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", exe, err)
	}
	w.cmd = cmd
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); h.console(stdout, false) }()
	go func() { defer pipes.Done(); h.console(stderr, true) }()
	go func() {
		pipes.Wait()
		w.err = cmd.Wait()
		close(w.exited)
	}()
	h.logger.Info("started the custom handler", "path", exe, "pid", cmd.Process.Pid, "port", port)

	deadline := time.Now().Add(initializationTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.baseURL()+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return w, nil
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			// The host counts any error that is not a socket error as ready.
			return w, nil
		}
		select {
		case <-w.exited:
			return nil, fmt.Errorf("the custom handler exited before it was ready: %v", w.err)
		case <-ctx.Done():
			w.kill()
			return nil, ctx.Err()
		case <-time.After(probeInterval):
		}
		if time.Now().After(deadline) {
			w.kill()
			return nil, fmt.Errorf("Initializing HttpWorker timed out: nothing answered on 127.0.0.1:%d within %s", port, initializationTimeout)
		}
	}
}

// console forwards the handler's output as the host does: stdout lines at Information,
// stderr lines at Error, or Warning when the line mentions "warn".
func (h *Host) console(r io.Reader, isStderr bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if h.consoleOut != nil {
			h.consoleMu.Lock()
			fmt.Fprintln(h.consoleOut, line)
			h.consoleMu.Unlock()
			continue
		}
		level := slog.LevelInfo
		switch {
		case strings.HasPrefix(line, "LanguageWorkerConsoleLog"):
			level = slog.LevelDebug
		case isStderr && strings.Contains(strings.ToLower(line), "warn"):
			level = slog.LevelWarn
		case isStderr:
			level = slog.LevelError
		}
		h.logger.Log(context.Background(), level, line, "category", "Host.Function.Console")
	}
}

// stop asks the process to end, then kills it when grace runs out.
func (w *worker) stop(grace time.Duration) {
	if w.cmd.Process == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(grace):
		w.kill()
		<-w.exited
	}
}

func (w *worker) kill() {
	if w.cmd.Process != nil {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	}
}
