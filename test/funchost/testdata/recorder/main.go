// Command recorder is a custom handler for the funchost conformance tests. It writes
// every request the host sends it, exactly as received, to a JSONL file, and answers
// from a script the test controls, so a test can see the host's side of the wire and
// make the handler misbehave in the ways a real handler can.
//
// Settings, all given to it through the host's environment:
//
//	RECORDER_LOG     JSONL file to append records to (required)
//	RECORDER_SCRIPT  JSON file read on every request: {"<function>": [reply, ...], "*": [...]}.
//	                 The n-th call of a function gets the n-th reply, the last one repeating.
//	                 A missing file or function answers 200 application/json {}.
//
// It answers GET / with 404, so the host's readiness probe must accept any status.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// record is one line of the log. Kind is "start", "request" or "signal".
type record struct {
	Kind             string            `json:"kind"`
	PID              int               `json:"pid"`
	Method           string            `json:"method,omitempty"`
	Path             string            `json:"path,omitempty"`
	RawQuery         string            `json:"rawQuery,omitempty"`
	Proto            string            `json:"proto,omitempty"`
	Host             string            `json:"host,omitempty"`
	Header           http.Header       `json:"header,omitempty"`
	ContentLength    int64             `json:"contentLength"`
	TransferEncoding []string          `json:"transferEncoding,omitempty"`
	Body             string            `json:"body,omitempty"`
	Env              map[string]string `json:"env,omitempty"`
	Args             []string          `json:"args,omitempty"`
	Cwd              string            `json:"cwd,omitempty"`
	Signal           string            `json:"signal,omitempty"`
}

// reply is what the script asks for.
type reply struct {
	Status int `json:"status,omitempty"`
	// ContentType nil means application/json; "" sets no header, so Go sniffs one.
	ContentType *string `json:"contentType,omitempty"`
	// Body is sent verbatim when set; otherwise JSON, otherwise {}.
	Body *string         `json:"body,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
	// Hang holds the reply until the host gives up on the request.
	Hang bool `json:"hang,omitempty"`
	// HoldFile holds the reply until that file exists.
	HoldFile string `json:"holdFile,omitempty"`
}

// holdLimit bounds every wait, so a test that forgets to release cannot leave the
// process behind for long.
const holdLimit = 2 * time.Minute

// envPrefixes limits the recorded environment to what the tests look at; the rest of
// the machine's environment has no business in the log.
var envPrefixes = []string{"FUNCTIONS_", "APP_", "AzureFunctionsJobHost"}

type recorder struct {
	mu     sync.Mutex
	f      *os.File
	script string
	calls  map[string]int
}

func (r *recorder) write(rec record) {
	rec.PID = os.Getpid()
	b, err := json.Marshal(rec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recorder: encoding a record:", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// One write per line, so a reader never sees half of a line followed by another.
	if _, err := r.f.Write(append(b, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "recorder: writing a record:", err)
	}
}

func (r *recorder) next(function string) reply {
	var script map[string][]reply
	if b, err := os.ReadFile(r.script); err == nil {
		if err := json.Unmarshal(b, &script); err != nil {
			fmt.Fprintln(os.Stderr, "recorder: bad script:", err)
		}
	}
	replies, ok := script[function]
	if !ok {
		replies = script["*"]
	}
	r.mu.Lock()
	n := r.calls[function]
	r.calls[function] = n + 1
	r.mu.Unlock()
	if len(replies) == 0 {
		return reply{}
	}
	return replies[min(n, len(replies)-1)]
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.write(record{
		Kind: "request", Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery,
		Proto: req.Proto, Host: req.Host, Header: req.Header, ContentLength: req.ContentLength,
		TransferEncoding: req.TransferEncoding, Body: string(body),
	})
	if req.Method == http.MethodGet && req.URL.Path == "/" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	rp := r.next(strings.TrimPrefix(req.URL.Path, "/"))
	if rp.HoldFile != "" {
		deadline := time.Now().Add(holdLimit)
		for time.Now().Before(deadline) && req.Context().Err() == nil {
			if _, err := os.Stat(rp.HoldFile); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if rp.Hang {
		select {
		case <-req.Context().Done():
		case <-time.After(holdLimit):
		}
		return
	}
	ct := "application/json"
	if rp.ContentType != nil {
		ct = *rp.ContentType
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	out := []byte("{}")
	switch {
	case rp.Body != nil:
		out = []byte(*rp.Body)
	case len(rp.JSON) > 0:
		out = rp.JSON
	}
	status := rp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if len(out) > 0 && ct == "" {
		// Let net/http sniff the type from the body, as a handler that forgets the
		// header gets.
		w.Header().Set("Content-Type", http.DetectContentType(out))
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func main() {
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	logPath := os.Getenv("RECORDER_LOG")
	if port == "" || logPath == "" {
		fmt.Fprintln(os.Stderr, "recorder: FUNCTIONS_CUSTOMHANDLER_PORT and RECORDER_LOG are required")
		os.Exit(2)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(2)
	}
	r := &recorder{f: f, script: os.Getenv("RECORDER_SCRIPT"), calls: map[string]int{}}

	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		for _, p := range envPrefixes {
			if strings.HasPrefix(k, p) {
				env[k] = v
			}
		}
	}
	cwd, _ := os.Getwd()
	r.write(record{Kind: "start", Env: env, Args: os.Args[1:], Cwd: cwd})

	// The host shows these lines in its log: stdout as information, stderr as error, or
	// as warning when the line mentions warn.
	fmt.Println("recorder: listening on port " + port)
	fmt.Fprintln(os.Stderr, "recorder: a warning line")
	fmt.Fprintln(os.Stderr, "recorder: an error line")

	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		s := <-sig
		r.write(record{Kind: "signal", Signal: s.String()})
		os.Exit(0)
	}()
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}
}
