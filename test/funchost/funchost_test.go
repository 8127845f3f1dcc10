package funchost_test

// Conformance tests for the host imitation. Each test builds a script root of its own,
// runs the imitation against the recorder handler in testdata/recorder (which logs every
// request exactly as received and answers from a script), and checks the wire against
// the project's reference for the real Azure Functions host.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/funchost"
)

// ---------------------------------------------------------------------------------
// Shared fixtures: the recorder binary and one Azurite for the whole package.

var recorderBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "funchost-recorder-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	recorderBin = filepath.Join(dir, "recorder")
	// testdata is outside ./..., so the handler is built here, once, for every test.
	cmd := exec.Command("go", "build", "-o", recorderBin, "./testdata/recorder")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the recorder handler: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if az != nil {
		_ = az.Close()
	}
	return code
}

var (
	azOnce sync.Once
	az     *azurite.Server
	azErr  error
)

// storage returns the connection string of an Azurite shared by the package; queue
// names are unique per test, so tests do not see each other's messages.
func storage(t *testing.T) string {
	t.Helper()
	azOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			azErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		az, azErr = azurite.Start(ctx, azurite.Options{RepoRoot: root})
	})
	if azErr != nil {
		t.Fatalf("starting Azurite: %v", azErr)
	}
	return az.ConnectionString
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var queueSeq atomic.Int64

// queueName makes a queue name no other test uses.
func queueName(base string) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(base), queueSeq.Add(1))
}

// ---------------------------------------------------------------------------------
// The recorder's log and script, mirrored from testdata/recorder.

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

type reply struct {
	Status      int             `json:"status,omitempty"`
	ContentType *string         `json:"contentType,omitempty"`
	Body        *string         `json:"body,omitempty"`
	JSON        json.RawMessage `json:"json,omitempty"`
	Hang        bool            `json:"hang,omitempty"`
	HoldFile    string          `json:"holdFile,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func jsonReply(status int, body string) reply {
	return reply{Status: status, JSON: json.RawMessage(body)}
}

// ---------------------------------------------------------------------------------
// An app: a script root, its host.json, the recorder's files and the running host.

type app struct {
	t          *testing.T
	root       string
	logPath    string
	scriptPath string
	hostJSON   map[string]any
	env        map[string]string
	logs       *logSink
	script     map[string][]reply
	host       *funchost.Host
}

func newApp(t *testing.T) *app {
	t.Helper()
	work := t.TempDir()
	a := &app{
		t:          t,
		root:       filepath.Join(work, "wwwroot"),
		logPath:    filepath.Join(work, "recorder.jsonl"),
		scriptPath: filepath.Join(work, "script.json"),
		logs:       &logSink{},
		script:     map[string][]reply{},
	}
	if err := os.MkdirAll(a.root, 0o755); err != nil {
		t.Fatal(err)
	}
	a.hostJSON = map[string]any{
		"version": "2.0",
		"customHandler": map[string]any{
			"description": map[string]any{"defaultExecutablePath": recorderBin},
		},
		"extensions": map[string]any{
			// Short polling and immediate retries keep the queue tests quick.
			"queues": map[string]any{"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"},
		},
	}
	a.env = map[string]string{"RECORDER_LOG": a.logPath, "RECORDER_SCRIPT": a.scriptPath}
	return a
}

// set writes a host.json value at a dotted path.
func (a *app) set(path string, v any) {
	m := a.hostJSON
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func (a *app) writeFile(rel, content string) {
	a.t.Helper()
	p := filepath.Join(a.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

func (a *app) function(name, functionJSON string) {
	a.t.Helper()
	a.writeFile(filepath.Join(name, "function.json"), functionJSON)
}

// reply sets the handler's answers for one function: the n-th call gets the n-th reply,
// and the last one repeats.
func (a *app) reply(fn string, replies ...reply) {
	a.t.Helper()
	a.script[fn] = replies
	b, err := json.Marshal(a.script)
	if err != nil {
		a.t.Fatal(err)
	}
	// Rename, so the recorder never reads a half-written script.
	tmp := a.scriptPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, a.scriptPath); err != nil {
		a.t.Fatal(err)
	}
}

func (a *app) tryStart(mod ...func(*funchost.Options)) (*funchost.Host, error) {
	a.t.Helper()
	b, err := json.MarshalIndent(a.hostJSON, "", "  ")
	if err != nil {
		a.t.Fatal(err)
	}
	a.writeFile("host.json", string(b))
	o := funchost.Options{
		ScriptRoot: a.root,
		HTTPAddr:   "127.0.0.1:0",
		Env:        a.env,
		Logger:     slog.New(sinkHandler{s: a.logs}),
	}
	for _, m := range mod {
		m(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := funchost.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	a.host = h
	a.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = h.Stop(ctx)
	})
	return h, nil
}

func (a *app) start(mod ...func(*funchost.Options)) *funchost.Host {
	a.t.Helper()
	h, err := a.tryStart(mod...)
	if err != nil {
		a.t.Fatalf("Start: %v", err)
	}
	return h
}

// records reads the recorder's log. A line still being written has no newline yet and
// is left for the next read.
func (a *app) records() []record {
	a.t.Helper()
	b, err := os.ReadFile(a.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		a.t.Fatal(err)
	}
	var out []record
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		var r record
		if err := json.Unmarshal(b[:i], &r); err != nil {
			a.t.Fatalf("recorder log line %q: %v", b[:i], err)
		}
		out = append(out, r)
		b = b[i+1:]
	}
	return out
}

func (a *app) kind(kind string) []record {
	var out []record
	for _, r := range a.records() {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// invocations are the requests the host made for one function.
func (a *app) invocations(fn string) []record {
	var out []record
	for _, r := range a.kind("request") {
		if r.Method == http.MethodPost && r.Path == "/"+fn {
			out = append(out, r)
		}
	}
	return out
}

func (a *app) waitInvocations(fn string, n int) []record {
	a.t.Helper()
	var got []record
	waitFor(a.t, fmt.Sprintf("%d invocation(s) of %s", n, fn), func() bool {
		got = a.invocations(fn)
		return len(got) >= n
	})
	return got
}

func (a *app) url(path string) string { return a.host.URL() + path }

// waitFor polls cond a bounded number of times. The bound only stops a broken host from
// hanging the suite; nothing here measures how fast the host is.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 600 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// ---------------------------------------------------------------------------------
// The host's logs.

type logLine struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

type logSink struct {
	mu    sync.Mutex
	lines []logLine
}

func (s *logSink) find(pred func(logLine) bool) (logLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if pred(l) {
			return l, true
		}
	}
	return logLine{}, false
}

func (s *logSink) has(msg string) bool {
	_, ok := s.find(func(l logLine) bool { return l.Msg == msg })
	return ok
}

type sinkHandler struct {
	s     *logSink
	attrs []slog.Attr
}

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	l := logLine{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		l.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.s.mu.Lock()
	h.s.lines = append(h.s.lines, l)
	h.s.mu.Unlock()
	return nil
}

func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{s: h.s, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h sinkHandler) WithGroup(string) slog.Handler { return h }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ---------------------------------------------------------------------------------
// HTTP and queue clients.

// The client never uses a proxy: everything it calls is on loopback.
var httpClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 90 * time.Second}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func send(t *testing.T, method, url string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func get(t *testing.T, url string) response {
	t.Helper()
	return send(t, http.MethodGet, url, nil, nil)
}

func queueClient(t *testing.T, name string) *azqueue.QueueClient {
	t.Helper()
	svc, err := azqueue.NewServiceClientFromConnectionString(storage(t), &azqueue.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewQueueClient(name)
}

func isCode(err error, code string) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == code
}

func createQueue(t *testing.T, q *azqueue.QueueClient) {
	t.Helper()
	if _, err := q.Create(t.Context(), nil); err != nil && !isCode(err, "QueueAlreadyExists") {
		t.Fatalf("creating a queue: %v", err)
	}
}

func enqueue(t *testing.T, q *azqueue.QueueClient, text string) *azqueue.EnqueuedMessage {
	t.Helper()
	createQueue(t, q)
	resp, err := q.EnqueueMessage(t.Context(), text, nil)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return resp.Messages[0]
}

// peek returns the texts of the visible messages, oldest first; a queue that does not
// exist has none.
func peek(t *testing.T, q *azqueue.QueueClient) []string {
	t.Helper()
	resp, err := q.PeekMessages(t.Context(), &azqueue.PeekMessagesOptions{NumberOfMessages: ptr(int32(32))})
	if isCode(err, "QueueNotFound") {
		return nil
	}
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	var out []string
	for _, m := range resp.Messages {
		out = append(out, *m.MessageText)
	}
	return out
}

// messageCount counts invisible messages too, so 0 means deleted, not just hidden.
func messageCount(t *testing.T, q *azqueue.QueueClient) int {
	t.Helper()
	resp, err := q.GetProperties(t.Context(), nil)
	if isCode(err, "QueueNotFound") {
		return 0
	}
	if err != nil {
		t.Fatalf("queue properties: %v", err)
	}
	return int(*resp.ApproximateMessagesCount)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("stored message %q is not base64: %v", s, err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------------
// Reading the invocation body.

type envelope struct {
	Data     map[string]json.RawMessage
	Metadata map[string]json.RawMessage
}

func decodeEnvelope(t *testing.T, r record) envelope {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Body), &top); err != nil {
		t.Fatalf("invocation body is not JSON: %v\n%s", err, r.Body)
	}
	if got := sortedKeys(top); !slices.Equal(got, []string{"Data", "Metadata"}) {
		t.Fatalf("invocation body keys = %v, want exactly [Data Metadata]", got)
	}
	var e envelope
	if err := json.Unmarshal(top["Data"], &e.Data); err != nil || e.Data == nil {
		t.Fatalf("Data is not an object: %s", top["Data"])
	}
	if err := json.Unmarshal(top["Metadata"], &e.Metadata); err != nil || e.Metadata == nil {
		t.Fatalf("Metadata is not an object: %s", top["Metadata"])
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// str reads a JSON value that must be a string.
func str(t *testing.T, m map[string]json.RawMessage, key string) string {
	t.Helper()
	raw, ok := m[key]
	if !ok {
		t.Fatalf("key %q is missing; keys: %v", key, sortedKeys(m))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s = %s, want a JSON string", key, raw)
	}
	return s
}

func object(t *testing.T, m map[string]json.RawMessage, key string) map[string]json.RawMessage {
	t.Helper()
	raw, ok := m[key]
	if !ok {
		t.Fatalf("key %q is missing; keys: %v", key, sortedKeys(m))
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		t.Fatalf("%s = %s, want a JSON object", key, raw)
	}
	return o
}

// quoted is s as the host's JsonConvert.SerializeObject writes it: a JSON string with
// only quotes, backslashes and control characters escaped.
func quoted(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

var (
	guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// DateTimeOffset after the host's ToString round trip: whole seconds, +00:00.
	offsetTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`)
	// A UTC DateTime as Newtonsoft writes it: up to seven fraction digits, trailing
	// zeros dropped, and no dot at all for a whole second.
	utcNowRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,6}[1-9])?Z$`)
)

func checkSys(t *testing.T, meta map[string]json.RawMessage, fn string) {
	t.Helper()
	sys := object(t, meta, "sys")
	if got := str(t, sys, "MethodName"); got != fn {
		t.Errorf("sys.MethodName = %q, want %q", got, fn)
	}
	if got := str(t, sys, "UtcNow"); !utcNowRE.MatchString(got) {
		t.Errorf("sys.UtcNow = %q, not a Newtonsoft UTC DateTime", got)
	}
	if got := str(t, sys, "RandGuid"); !guidRE.MatchString(got) {
		t.Errorf("sys.RandGuid = %q, not a lowercase GUID", got)
	}
}

func noTriggerKeys(t *testing.T, meta map[string]json.RawMessage) {
	t.Helper()
	for k := range meta {
		if strings.HasSuffix(strings.ToLower(k), "trigger") {
			t.Errorf("Metadata has %q; the host drops keys ending in trigger", k)
		}
	}
}

const httpAnon = `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":"res"}]}`

func queueTriggered(queue string) string {
	return fmt.Sprintf(`{"bindings":[
 {"type":"queueTrigger","direction":"in","name":"msg","queueName":%q,"connection":"AzureWebJobsStorage"}]}`, queue)
}

// ---------------------------------------------------------------------------------
// Discovery.

func TestDiscovery(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Alpha", httpAnon)
	a.function("my_fn-2", `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":"$return"}]}`)
	a.writeFile("bin/readme.txt", "a folder without function.json is not a function")
	// One level too deep: the host enumerates only the script root's direct subfolders.
	a.writeFile("functions/Deep/function.json", httpAnon)
	a.start()

	for path, want := range map[string]int{
		"/api/Alpha":          200,
		"/api/my_fn-2":        200,
		"/api/Deep":           404,
		"/api/functions/Deep": 404,
		"/api/functions":      404,
		"/api/bin":            404,
	} {
		if got := get(t, a.url(path)).Status; got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
	var paths []string
	for _, r := range a.kind("request") {
		if r.Method == http.MethodPost {
			paths = append(paths, r.Path)
		}
	}
	sort.Strings(paths)
	if want := []string{"/Alpha", "/my_fn-2"}; !slices.Equal(paths, want) {
		t.Errorf("handler was invoked for %v, want %v", paths, want)
	}
}

func TestDiscoveryRejectsInvalidFunctions(t *testing.T) {
	t.Parallel()
	two := `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"queueTrigger","direction":"in","name":"msg","queueName":"q"}]}`
	withBinding := func(name string) string {
		return fmt.Sprintf(`{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":%q}]}`, name)
	}
	cases := []struct {
		name, folder, functionJSON, want string
	}{
		{"FolderWithDot", "bad.name", httpAnon, "bad.name"},
		{"FolderStartsWithDigit", "1st", httpAnon, "1st"},
		{"FolderNamedHost", "host", httpAnon, "host"},
		{"FolderNameTooLong", strings.Repeat("f", 129), httpAnon, strings.Repeat("f", 129)},
		{"BindingNameUnderscore", "Fn", withBinding("my_res"), "my_res"},
		{"BindingNameHyphen", "Fn", withBinding("my-res"), "my-res"},
		{"BindingNameStartsWithDigit", "Fn", withBinding("1res"), "1res"},
		{"BindingNamesDifferOnlyInCase", "Fn", withBinding("REQ"), "REQ"},
		{"TwoTriggers", "Fn", two, "trigger"},
		{"NoBindings", "Fn", `{"bindings":[]}`, "binding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t)
			a.function("Good", httpAnon)
			a.function(c.folder, c.functionJSON)
			_, err := a.tryStart()
			if err == nil {
				t.Fatal("Start accepted the app")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.folder) {
				t.Errorf("Start error %q does not name %q and %q", err, c.folder, c.want)
			}
		})
	}

	t.Run("LongestValidNames", func(t *testing.T) {
		t.Parallel()
		a := newApp(t)
		name := "f" + strings.Repeat("-", 127)
		a.function(name, withBinding("r"+strings.Repeat("9", 127)))
		a.start()
		if got := get(t, a.url("/api/"+name)).Status; got != 200 {
			t.Errorf("GET = %d, want 200", got)
		}
	})

	t.Run("MissingExecutable", func(t *testing.T) {
		t.Parallel()
		a := newApp(t)
		a.set("customHandler.description.defaultExecutablePath", "no-such-handler-here")
		a.function("Good", httpAnon)
		_, err := a.tryStart()
		if err == nil || !strings.Contains(err.Error(), "no-such-handler-here") {
			t.Errorf("Start error = %v, want one naming the missing executable", err)
		}
	})
}

// ---------------------------------------------------------------------------------
// Process start-up.

func TestHandlerEnvironment(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.writeFile("work/.keep", "")
	// A relative defaultExecutablePath is resolved against the script root.
	if err := os.MkdirAll(filepath.Join(a.root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(recorderBin, filepath.Join(a.root, "bin", "handler")); err != nil {
		t.Fatal(err)
	}
	a.set("customHandler.description.defaultExecutablePath", "bin/handler")
	// The host joins arguments, the quoted defaultWorkerPath and workerArguments into one
	// command line, expands %NAME% (the worker's own variables too), and .NET splits the
	// line again with Windows quoting rules.
	a.set("customHandler.description.arguments", []any{
		"--setting=%APP_SETTING%", "--unset=%APP_NEVER_SET_ANYWHERE%", "--two=%APP_SETTING%/%APP_OTHER%",
		"--port=%FUNCTIONS_CUSTOMHANDLER_PORT%", "two words", `"quoted arg"`, "plain",
	})
	a.set("customHandler.description.defaultWorkerPath", "worker.js")
	a.set("customHandler.description.workerArguments", []any{"--w=%APP_OTHER%"})
	a.set("customHandler.description.workingDirectory", "work")
	a.env["APP_SETTING"] = "from-app-settings"
	a.env["APP_OTHER"] = "second"
	a.function("Ping", httpAnon)
	h := a.start()
	if got := get(t, a.url("/api/Ping")).Status; got != 200 {
		t.Fatalf("GET = %d", got)
	}

	starts := a.kind("start")
	if len(starts) != 1 {
		t.Fatalf("handler started %d times, want 1", len(starts))
	}
	s := starts[0]
	port := s.Env["FUNCTIONS_CUSTOMHANDLER_PORT"]
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		t.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT = %q, not a port", port)
	}
	if got := s.Env["FUNCTIONS_HTTPWORKER_PORT"]; got != port {
		t.Errorf("FUNCTIONS_HTTPWORKER_PORT = %q, want %q", got, port)
	}
	id := s.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"]
	if !guidRE.MatchString(id) {
		t.Errorf("FUNCTIONS_CUSTOMHANDLER_WORKER_ID = %q, not a GUID", id)
	}
	if got := s.Env["FUNCTIONS_HTTPWORKER_ID"]; got != id {
		t.Errorf("FUNCTIONS_HTTPWORKER_ID = %q, want %q", got, id)
	}
	if got := s.Env["FUNCTIONS_APP_ROOT_PATH"]; got != a.root {
		t.Errorf("FUNCTIONS_APP_ROOT_PATH = %q, want %q", got, a.root)
	}
	if got := s.Env["APP_SETTING"]; got != "from-app-settings" {
		t.Errorf("app setting APP_SETTING = %q", got)
	}
	wantArgs := []string{"--setting=from-app-settings", "--unset=", "--two=from-app-settings/second",
		"--port=" + port, "two", "words", "quoted arg", "plain", filepath.Join(a.root, "worker.js"), "--w=second"}
	if !slices.Equal(s.Args, wantArgs) {
		t.Errorf("arguments = %q, want %q", s.Args, wantArgs)
	}
	if got, want := evalSymlinks(t, s.Cwd), evalSymlinks(t, filepath.Join(a.root, "work")); got != want {
		t.Errorf("working directory = %q, want %q", got, want)
	}
	if s.PID != h.HandlerPID() {
		t.Errorf("HandlerPID = %d, the handler runs as %d", h.HandlerPID(), s.PID)
	}
	inv := a.invocations("Ping")
	if len(inv) != 1 {
		t.Fatalf("%d invocations", len(inv))
	}
	// The host calls the handler on 127.0.0.1 and the port it announced.
	if want := "127.0.0.1:" + port; inv[0].Host != want {
		t.Errorf("invocation went to %q, want %q", inv[0].Host, want)
	}
}

func TestHandlerWorkingDirectoryDefaultsToScriptRoot(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	a.start()
	starts := a.kind("start")
	if len(starts) != 1 {
		t.Fatalf("handler started %d times", len(starts))
	}
	if got, want := evalSymlinks(t, starts[0].Cwd), evalSymlinks(t, a.root); got != want {
		t.Errorf("working directory = %q, want the script root %q", got, want)
	}
	if len(starts[0].Args) != 0 {
		t.Errorf("the host appended arguments %q; it adds none", starts[0].Args)
	}
}

func TestExecutablePathExpansion(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.env["APP_HANDLER_DIR"] = filepath.Dir(recorderBin)
	a.set("customHandler.description.defaultExecutablePath", "%APP_HANDLER_DIR%/"+filepath.Base(recorderBin))
	a.function("Ping", httpAnon)
	a.start()
	if got := get(t, a.url("/api/Ping")).Status; got != 200 {
		t.Errorf("GET = %d", got)
	}
	if n := len(a.kind("start")); n != 1 {
		t.Errorf("handler started %d times", n)
	}
}

func evalSymlinks(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadinessProbeAndConsole(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	h := a.start()

	// The recorder answers GET / with 404, and the host still counted it as ready.
	var probed bool
	for _, r := range a.kind("request") {
		probed = probed || (r.Method == http.MethodGet && r.Path == "/")
	}
	if !probed {
		t.Error("the host did not probe GET / before using the handler")
	}

	// Without Options.Console, each line is logged as the host logs it: stdout at
	// Information, stderr at Error, or Warning when the line mentions warn.
	port := a.kind("start")[0].Env["FUNCTIONS_CUSTOMHANDLER_PORT"]
	want := map[string]slog.Level{
		"recorder: listening on port " + port: slog.LevelInfo,
		"recorder: a warning line":            slog.LevelWarn,
		"recorder: an error line":             slog.LevelError,
	}
	// Stop returns after the handler exited and its output was read to the end.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for msg, level := range want {
		line, ok := a.logs.find(func(l logLine) bool { return l.Msg == msg })
		if !ok {
			t.Errorf("console line %q was not logged", msg)
			continue
		}
		if line.Level != level {
			t.Errorf("%q logged at %v, want %v", msg, line.Level, level)
		}
		if line.Attrs["category"] != "Host.Function.Console" {
			t.Errorf("%q has category %q, want Host.Function.Console", msg, line.Attrs["category"])
		}
	}
}

func TestConsoleOption(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	console := &syncBuffer{}
	h := a.start(func(o *funchost.Options) { o.Console = console })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Options.Console takes the raw lines instead of the logger.
	port := a.kind("start")[0].Env["FUNCTIONS_CUSTOMHANDLER_PORT"]
	for _, msg := range []string{"recorder: listening on port " + port, "recorder: a warning line", "recorder: an error line"} {
		if !strings.Contains(console.String(), msg+"\n") {
			t.Errorf("Console did not get %q; it has %q", msg, console.String())
		}
	}
	if l, ok := a.logs.find(func(l logLine) bool { return l.Attrs["category"] == "Host.Function.Console" }); ok {
		t.Errorf("console line %q also went to the logger", l.Msg)
	}
}

// ---------------------------------------------------------------------------------
// The invocation request.

func TestInvocationEnvelope(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("MixedCase", httpAnon)
	const version = "4.99.0.12345"
	a.start(func(o *funchost.Options) { o.HostVersion = version })

	// Routes match without regard to case; the handler path keeps the folder's case.
	for _, p := range []string{"/api/MixedCase", "/api/mixedcase"} {
		if got := get(t, a.url(p)).Status; got != 200 {
			t.Fatalf("GET %s = %d", p, got)
		}
	}
	invs := a.invocations("MixedCase")
	if len(invs) != 2 {
		t.Fatalf("%d invocations of /MixedCase, want 2; requests: %+v", len(invs), a.kind("request"))
	}
	ids := map[string]bool{}
	for _, r := range invs {
		if r.RawQuery != "" || r.Proto != "HTTP/1.1" {
			t.Errorf("request line: query %q proto %q, want no query over HTTP/1.1", r.RawQuery, r.Proto)
		}
		checkHeader(t, r.Header, "Content-Type", "application/json; charset=utf-8")
		checkHeader(t, r.Header, "User-Agent", "Azure-Functions-Host/"+version)
		checkHeader(t, r.Header, "X-Azure-Functions-Hostversion", version)
		id := r.Header.Get("X-Azure-Functions-Invocationid")
		if !guidRE.MatchString(id) {
			t.Errorf("X-Azure-Functions-InvocationId = %q, not a lowercase GUID", id)
		}
		ids[id] = true
		if r.ContentLength != -1 || !slices.Equal(r.TransferEncoding, []string{"chunked"}) || r.Header.Get("Content-Length") != "" {
			t.Errorf("framing: Content-Length %d (header %q), Transfer-Encoding %v; want chunked with no length",
				r.ContentLength, r.Header.Get("Content-Length"), r.TransferEncoding)
		}
		decodeEnvelope(t, r)
	}
	if len(ids) != 2 {
		t.Errorf("invocation ids %v are not fresh per invocation", ids)
	}
}

func checkHeader(t *testing.T, h http.Header, name, want string) {
	t.Helper()
	if got := h.Values(name); !slices.Equal(got, []string{want}) {
		t.Errorf("%s = %q, want exactly %q", name, got, want)
	}
}

func TestDefaultHostVersion(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	a.start()
	get(t, a.url("/api/Ping"))
	r := a.waitInvocations("Ping", 1)[0]
	checkHeader(t, r.Header, "X-Azure-Functions-Hostversion", funchost.DefaultHostVersion)
	checkHeader(t, r.Header, "User-Agent", "Azure-Functions-Host/"+funchost.DefaultHostVersion)
}

// ---------------------------------------------------------------------------------
// HTTP trigger data.

type httpRequestData struct {
	Url        string
	Method     string
	Query      map[string]string
	Headers    map[string][]string
	Params     map[string]any
	Identities []map[string]any
	Body       *string
}

func TestHTTPTriggerData(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Items", `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get","post"],"route":"items/{id}/{name?}"},
 {"type":"http","direction":"out","name":"res"}]}`)
	a.start()
	hostport := strings.TrimPrefix(a.host.URL(), "http://")

	// call sends one request and returns what the handler received for it.
	call := func(t *testing.T, method, path string, body io.Reader, header http.Header) (map[string]json.RawMessage, httpRequestData, map[string]json.RawMessage) {
		t.Helper()
		before := len(a.invocations("Items"))
		if got := send(t, method, a.url(path), body, header).Status; got != 200 {
			t.Fatalf("%s %s = %d", method, path, got)
		}
		invs := a.invocations("Items")
		if len(invs) != before+1 {
			t.Fatalf("%d new invocations, want 1", len(invs)-before)
		}
		e := decodeEnvelope(t, invs[before])
		if got := sortedKeys(e.Data); !slices.Equal(got, []string{"req"}) {
			t.Fatalf("Data keys = %v, want [req]", got)
		}
		raw := object(t, e.Data, "req")
		var req httpRequestData
		if err := json.Unmarshal(e.Data["req"], &req); err != nil {
			t.Fatalf("Data.req does not have the documented shape: %v\n%s", err, e.Data["req"])
		}
		for _, k := range []string{"Url", "Method", "Query", "Headers", "Params", "Identities"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("Data.req has no %s", k)
			}
		}
		noTriggerKeys(t, e.Metadata)
		checkSys(t, e.Metadata, "Items")
		if _, ok := e.Metadata["req"]; ok {
			t.Error("Metadata carries the request itself")
		}
		return raw, req, e.Metadata
	}

	t.Run("JSONBodyQueryAndRoute", func(t *testing.T) {
		body := `{"title":"a<b & c","count":5,"ok":true,"nested":{"a":1},"list":[1,"x"],"none":null,` +
			`"when":"2024-04-06T15:30:00Z","q":"from the body"}`
		h := http.Header{"Content-Type": {"application/json"}, "X-Multi": {"one", "two"}}
		_, req, meta := call(t, http.MethodPost, "/api/items/42?x=1&x=2&code=secret&q=hi", strings.NewReader(body), h)

		if want := "http://" + hostport + "/api/items/42?x=1&x=2&code=secret&q=hi"; req.Url != want {
			t.Errorf("Url = %q, want %q", req.Url, want)
		}
		if req.Method != http.MethodPost {
			t.Errorf("Method = %q", req.Method)
		}
		if want := map[string]string{"x": "1,2", "code": "secret", "q": "hi"}; !mapsEqual(req.Query, want) {
			t.Errorf("Query = %v, want %v", req.Query, want)
		}
		if got := req.Headers["X-Multi"]; !slices.Equal(got, []string{"one", "two"}) {
			t.Errorf("Headers[X-Multi] = %q, want both values as an array", got)
		}
		if got := req.Headers["Content-Type"]; !slices.Equal(got, []string{"application/json"}) {
			t.Errorf("Headers[Content-Type] = %q", got)
		}
		if got := req.Headers["Host"]; !slices.Equal(got, []string{hostport}) {
			t.Errorf("Headers[Host] = %q, want [%s]", got, hostport)
		}
		if len(req.Params) != 1 || req.Params["id"] != "42" {
			t.Errorf("Params = %v, want only id=42 (the optional name is absent)", req.Params)
		}
		if len(req.Identities) != 1 || req.Identities[0]["IsAuthenticated"] != false {
			t.Errorf("Identities = %v, want one anonymous identity", req.Identities)
		}
		if req.Body == nil || *req.Body != body {
			t.Errorf("Body = %v, want the raw body", req.Body)
		}

		if want := map[string]string{"x": "1,2", "code": "secret", "q": "hi"}; !mapsEqual(stringMap(t, meta, "Query"), want) {
			t.Errorf("Metadata.Query = %s, want %v", meta["Query"], want)
		}
		headers := stringMap(t, meta, "Headers")
		if headers["X-Multi"] != "one,two" || headers["Content-Type"] != "application/json" {
			t.Errorf("Metadata.Headers = %v, want string values", headers)
		}
		// Route values, query keys but code, and body properties, each JSON-serialised
		// into a string. Body scalars are strings already, formatted by .NET: numbers
		// plainly, booleans as True/False, ISO dates in the invariant culture. Query
		// values override body properties of the same name.
		for key, want := range map[string]string{
			"id":    quoted("42"),
			"x":     quoted("1,2"),
			"q":     quoted("hi"),
			"title": quoted("a<b & c"),
			"count": quoted("5"),
			"ok":    quoted("True"),
			"when":  quoted("04/06/2024 15:30:00"),
			"list":  `[1,"x"]`,
		} {
			if got := str(t, meta, key); got != want {
				t.Errorf("Metadata.%s = %q, want %q", key, got, want)
			}
		}
		if got := object(t, meta, "nested"); string(got["a"]) != "1" {
			t.Errorf("Metadata.nested = %s, want the object", meta["nested"])
		}
		for _, k := range []string{"code", "none", "name"} {
			if _, ok := meta[k]; ok {
				t.Errorf("Metadata has %q = %s", k, meta[k])
			}
		}
	})

	t.Run("OptionalRouteValueAndNoBody", func(t *testing.T) {
		raw, req, meta := call(t, http.MethodGet, "/api/items/7/widget", nil, nil)
		if len(req.Params) != 2 || req.Params["id"] != "7" || req.Params["name"] != "widget" {
			t.Errorf("Params = %v", req.Params)
		}
		if req.Query == nil || len(req.Query) != 0 {
			t.Errorf("Query = %s, want {}", raw["Query"])
		}
		if _, ok := raw["Body"]; ok {
			t.Errorf("Body = %s for a request without one", raw["Body"])
		}
		if got := str(t, meta, "name"); got != quoted("widget") {
			t.Errorf("Metadata.name = %q", got)
		}
	})

	t.Run("ChunkedBodyIsNotPassed", func(t *testing.T) {
		// A reader of unknown length makes the client send the body chunked, with no
		// Content-Length, and the host then leaves Body out.
		body := io.MultiReader(strings.NewReader(`{"title":"chunked"}`))
		raw, _, meta := call(t, http.MethodPost, "/api/items/1", body, http.Header{"Content-Type": {"application/json"}})
		if _, ok := raw["Body"]; ok {
			t.Errorf("Body = %s for a chunked request", raw["Body"])
		}
		if _, ok := meta["title"]; ok {
			t.Error("Metadata has body properties of a chunked request")
		}
	})

	binary := string([]byte{0, 1, 2, 0xfe, 0xff, '{'})
	for _, ct := range []string{"application/octet-stream", "multipart/form-data; boundary=xyz"} {
		t.Run("Base64Body/"+strings.Split(ct, ";")[0], func(t *testing.T) {
			_, req, _ := call(t, http.MethodPost, "/api/items/1", strings.NewReader(binary), http.Header{"Content-Type": {ct}})
			if want := b64(binary); req.Body == nil || *req.Body != want {
				t.Errorf("Body = %v, want base64 %q", req.Body, want)
			}
		})
	}

	t.Run("TextBodyVerbatim", func(t *testing.T) {
		text := "plain <text> & more"
		_, req, _ := call(t, http.MethodPost, "/api/items/1", strings.NewReader(text), http.Header{"Content-Type": {"text/plain"}})
		if req.Body == nil || *req.Body != text {
			t.Errorf("Body = %v, want %q", req.Body, text)
		}
	})
}

func stringMap(t *testing.T, m map[string]json.RawMessage, key string) map[string]string {
	t.Helper()
	var out map[string]string
	if err := json.Unmarshal(m[key], &out); err != nil {
		t.Fatalf("%s = %s, want an object of strings", key, m[key])
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------------
// Queue trigger data.

func TestQueueTriggerData(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	qn := queueName("trigger-data")
	a.function("QueueFn", queueTriggered(qn))
	a.env["AzureWebJobsStorage"] = storage(t)
	a.start()
	q := queueClient(t, qn)

	text := `{"scraperId":"abc","note":"a<b","count":3,"flag":true,"timestamp":"2024-04-06T15:30:00Z",` +
		`"nested":{"a":1},"list":[1,2],"none":null}`
	enq := enqueue(t, q, b64(text))
	r := a.waitInvocations("QueueFn", 1)[0]

	if r.Path != "/QueueFn" || r.ContentLength != -1 {
		t.Errorf("request %s %s with Content-Length %d", r.Method, r.Path, r.ContentLength)
	}
	checkHeader(t, r.Header, "Content-Type", "application/json; charset=utf-8")
	e := decodeEnvelope(t, r)
	if got := sortedKeys(e.Data); !slices.Equal(got, []string{"msg"}) {
		t.Fatalf("Data keys = %v, want [msg]", got)
	}
	// The message text JSON-serialised into a string: decoding Data once gives the
	// serialised form, twice gives the text.
	once := str(t, e.Data, "msg")
	if once != quoted(text) {
		t.Errorf("Data.msg decoded once = %s\nwant %s", once, quoted(text))
	}
	var twice string
	if err := json.Unmarshal([]byte(once), &twice); err != nil || twice != text {
		t.Errorf("Data.msg decoded twice = %q (%v), want the message text", twice, err)
	}

	meta := e.Metadata
	if got := str(t, meta, "DequeueCount"); got != "1" {
		t.Errorf("DequeueCount = %q, want the string 1", got)
	}
	if got := str(t, meta, "Id"); got != quoted(*enq.MessageID) {
		t.Errorf("Id = %q, want %q", got, quoted(*enq.MessageID))
	}
	if got := str(t, meta, "PopReceipt"); len(got) < 3 || got[0] != '"' || got[len(got)-1] != '"' {
		t.Errorf("PopReceipt = %q, want a string in quotes", got)
	}
	dto := func(tm time.Time) string { return tm.UTC().Format("2006-01-02T15:04:05") + "+00:00" }
	if got := str(t, meta, "InsertionTime"); got != dto(*enq.InsertionTime) {
		t.Errorf("InsertionTime = %q, want %q", got, dto(*enq.InsertionTime))
	}
	if got := str(t, meta, "ExpirationTime"); got != dto(*enq.ExpirationTime) {
		t.Errorf("ExpirationTime = %q, want %q", got, dto(*enq.ExpirationTime))
	}
	next := str(t, meta, "NextVisibleTime")
	for _, k := range []string{"InsertionTime", "ExpirationTime", "NextVisibleTime"} {
		if v := str(t, meta, k); !offsetTimeRE.MatchString(v) {
			t.Errorf("%s = %q, want whole seconds and +00:00", k, v)
		}
	}
	// The listener receives with a 10-minute visibility.
	if nv, err := time.Parse("2006-01-02T15:04:05-07:00", next); err != nil {
		t.Errorf("NextVisibleTime %q: %v", next, err)
	} else if earliest := enq.InsertionTime.UTC().Truncate(time.Second).Add(10*time.Minute - time.Second); nv.Before(earliest) {
		t.Errorf("NextVisibleTime %s is before insertion + 10 min", next)
	}
	checkSys(t, meta, "QueueFn")
	noTriggerKeys(t, meta)
	for key, want := range map[string]string{
		"scraperId": quoted("abc"),
		"note":      quoted("a<b"),
		"count":     quoted("3"),
		"flag":      quoted("True"),
		"timestamp": quoted("04/06/2024 15:30:00"),
	} {
		if got := str(t, meta, key); got != want {
			t.Errorf("Metadata.%s = %q, want %q", key, got, want)
		}
	}
	if got := object(t, meta, "nested"); string(got["a"]) != "1" {
		t.Errorf("Metadata.nested = %s, want the object", meta["nested"])
	}
	for _, k := range []string{"list", "none"} {
		if _, ok := meta[k]; ok {
			t.Errorf("Metadata has %q = %s; the host leaves out arrays and nulls of queue messages", k, meta[k])
		}
	}

	t.Run("MessagePropertyOverridesTriggerData", func(t *testing.T) {
		enqueue(t, q, b64(`{"Id":"order-7"}`))
		r := a.waitInvocations("QueueFn", 2)[1]
		meta := decodeEnvelope(t, r).Metadata
		if got := str(t, meta, "Id"); got != quoted("order-7") {
			t.Errorf("Id = %q, want the message's own Id property %q", got, quoted("order-7"))
		}
	})
}

func TestQueueTriggerEncodingNone(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	qn := queueName("trigger-none")
	a.set("extensions.queues.messageEncoding", "none")
	a.function("Plain", queueTriggered(qn))
	a.env["AzureWebJobsStorage"] = storage(t)
	a.start()
	q := queueClient(t, qn)
	const text = "plain text, <not> base64"
	enqueue(t, q, text)
	r := a.waitInvocations("Plain", 1)[0]
	e := decodeEnvelope(t, r)
	if got := str(t, e.Data, "msg"); got != quoted(text) {
		t.Errorf("Data.msg = %s, want %s", got, quoted(text))
	}
	waitFor(t, "the message to be deleted", func() bool { return messageCount(t, q) == 0 })
}

// ---------------------------------------------------------------------------------
// Handler responses.

func TestResponseHandling(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.env["AzureWebJobsStorage"] = storage(t)
	outputs := func(fn string) string {
		return fmt.Sprintf(`{"Outputs":{"out":"queued by %s","res":{"statusCode":200,"body":"from %s"}},"Logs":["log from %s"]}`, fn, fn, fn)
	}
	type tc struct {
		fn         string
		reply      reply
		wantStatus int
		wantBody   string
		succeeds   bool
	}
	cases := []tc{
		{"NonSuccess", jsonReply(500, outputs("NonSuccess")), 500, "", false},
		{"NotFound", jsonReply(404, outputs("NotFound")), 500, "", false},
		{"Redirect", jsonReply(302, outputs("Redirect")), 500, "", false},
		{"Accepted", jsonReply(202, outputs("Accepted")), 200, "from Accepted", true},
		{"TextPlain", reply{ContentType: ptr("text/plain; charset=utf-8"), JSON: json.RawMessage(outputs("TextPlain"))}, 500, "", false},
		{"Sniffed", reply{ContentType: ptr(""), JSON: json.RawMessage(outputs("Sniffed"))}, 500, "", false},
		{"TextJSON", reply{ContentType: ptr("text/json"), JSON: json.RawMessage(outputs("TextJSON"))}, 200, "from TextJSON", true},
		{"JSONCharset", reply{ContentType: ptr("application/json; charset=utf-8"), JSON: json.RawMessage(outputs("JSONCharset"))}, 200, "from JSONCharset", true},
		{"InvalidJSON", reply{Body: ptr(`{"Outputs":{"out":"queued by InvalidJSON"`)}, 500, "", false},
		{"EmptyBody", reply{Body: ptr("")}, 500, "", false},
		{"TopLevelCase", jsonReply(200, `{"outputs":{"out":"queued by TopLevelCase","res":{"StatusCode":"201","Body":"from TopLevelCase"}},"LOGS":["log from TopLevelCase"]}`), 201, "from TopLevelCase", true},
	}
	queues := map[string]string{}
	for _, c := range cases {
		queues[c.fn] = queueName("resp-" + c.fn)
		a.function(c.fn, fmt.Sprintf(`{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":"res"},
 {"type":"queue","direction":"out","name":"out","queueName":%q}]}`, queues[c.fn]))
		a.reply(c.fn, c.reply)
	}
	outputsCaseQueue := queueName("resp-outputscase")
	a.function("OutputsCase", fmt.Sprintf(`{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":"res"},
 {"type":"queue","direction":"out","name":"out","queueName":%q}]}`, outputsCaseQueue))
	a.reply("OutputsCase", jsonReply(200, `{"Outputs":{"OUT":"queued by OutputsCase","Res":{"statusCode":201,"body":"wrong"}},"Logs":["log from OutputsCase"]}`))
	a.start()

	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			t.Parallel()
			resp := get(t, a.url("/api/"+c.fn))
			if resp.Status != c.wantStatus || resp.Body != c.wantBody {
				t.Errorf("caller got %d %q, want %d %q", resp.Status, resp.Body, c.wantStatus, c.wantBody)
			}
			if n := len(a.invocations(c.fn)); n != 1 {
				t.Errorf("handler invoked %d times, want 1", n)
			}
			// The response reaches the caller only after outputs were written, so the
			// queue can be read at once.
			stored := peek(t, queueClient(t, queues[c.fn]))
			logged := a.logs.has("log from " + c.fn)
			if c.succeeds {
				if len(stored) != 1 || unb64(t, stored[0]) != "queued by "+c.fn {
					t.Errorf("output queue holds %q, want the one message", stored)
				}
				line, ok := a.logs.find(func(l logLine) bool { return l.Msg == "log from "+c.fn })
				if !ok {
					t.Error("the handler's Logs were not logged")
				} else if line.Level != slog.LevelInfo || line.Attrs["category"] != "Function."+c.fn+".User" {
					t.Errorf("Logs line at %v in category %q, want Information in Function.%s.User",
						line.Level, line.Attrs["category"], c.fn)
				}
			} else {
				if len(stored) != 0 {
					t.Errorf("a failed invocation wrote outputs: %q", stored)
				}
				if logged {
					t.Error("the Logs of a failed invocation were logged; the host drops them")
				}
			}
		})
	}

	t.Run("OutputsBindingNamesAreCaseSensitive", func(t *testing.T) {
		t.Parallel()
		resp := get(t, a.url("/api/OutputsCase"))
		// Neither "OUT" nor "Res" is a binding name, so nothing is written and the
		// http output is missing: 200 with {}.
		if resp.Status != 200 || resp.Body != "{}" {
			t.Errorf("caller got %d %q, want 200 {}", resp.Status, resp.Body)
		}
		if stored := peek(t, queueClient(t, outputsCaseQueue)); len(stored) != 0 {
			t.Errorf("output written under a differently cased name: %q", stored)
		}
		if !a.logs.has("log from OutputsCase") {
			t.Error("Logs of a successful invocation were not logged")
		}
	})

	t.Run("EmptyBodyIsFlagged", func(t *testing.T) {
		t.Parallel()
		// The real host would wait for the function timeout; the imitation must say so.
		waitFor(t, "an invocation of EmptyBody", func() bool { return len(a.invocations("EmptyBody")) > 0 })
		waitFor(t, "the empty-body error", func() bool {
			_, ok := a.logs.find(func(l logLine) bool {
				return l.Level == slog.LevelError && l.Attrs["function"] == "EmptyBody" && strings.Contains(l.Attrs["err"], "empty body")
			})
			return ok
		})
	})
}

// ---------------------------------------------------------------------------------
// Output bindings.

func TestQueueOutputs(t *testing.T) {
	t.Parallel()
	conn := storage(t)
	type tc struct {
		fn, binding, reply string
		want               []string // message bodies after undoing the encoding
	}
	queueOut := func(q, extra string) string {
		return fmt.Sprintf(`{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"queue","direction":"out","name":"out","queueName":%q%s}]}`, q, extra)
	}
	run := func(t *testing.T, encoding string, cases []tc) {
		a := newApp(t)
		a.env["AzureWebJobsStorage"] = conn
		a.set("extensions.queues.messageEncoding", encoding)
		queues := map[string]string{}
		for _, c := range cases {
			queues[c.fn] = queueName("out-" + encoding + "-" + c.fn)
			if c.binding == "" {
				a.function(c.fn, queueOut(queues[c.fn], ""))
			} else {
				a.function(c.fn, fmt.Sprintf(c.binding, queues[c.fn]))
			}
			a.reply(c.fn, jsonReply(200, c.reply))
		}
		a.start()
		for _, c := range cases {
			t.Run(c.fn, func(t *testing.T) {
				resp := get(t, a.url("/api/"+c.fn))
				if resp.Status != 200 {
					t.Fatalf("GET = %d %q", resp.Status, resp.Body)
				}
				stored := peek(t, queueClient(t, queues[c.fn]))
				var got []string
				for _, s := range stored {
					if encoding == "base64" {
						s = unb64(t, s)
					}
					got = append(got, s)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("messages = %q\nwant       %q", got, c.want)
				}
			})
		}
	}

	t.Run("base64", func(t *testing.T) {
		t.Parallel()
		run(t, "base64", []tc{
			{fn: "Object", reply: `{"Outputs":{"out":{"b":[1,2],"a":"x"}}}`,
				want: []string{"{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": \"x\"\n}"}},
			{fn: "Array", reply: `{"Outputs":{"out":["first",{"k":"v"},3]}}`,
				want: []string{"first", "{\n  \"k\": \"v\"\n}", "3"}},
			// "test" is valid base64, so the host turns it into the bytes it encodes.
			{fn: "Base64Trap", reply: `{"Outputs":{"out":"test"}}`, want: []string{"\xb5\xeb\x2d"}},
			{fn: "PlainString", reply: `{"Outputs":{"out":"hello"}}`, want: []string{"hello"}},
			{fn: "JSONArrayString", reply: `{"Outputs":{"out":"[\"a\",\"b\"]"}}`, want: []string{"a", "b"}},
			{fn: "JSONObjectString", reply: `{"Outputs":{"out":"{\"k\":1}"}}`, want: []string{"{\n  \"k\": 1\n}"}},
			{fn: "Binary", binding: `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"queue","direction":"out","name":"out","queueName":%q,"dataType":"binary"}]}`,
				reply: `{"Outputs":{"out":"test"}}`, want: []string{"test"}},
			{fn: "ReturnValue", binding: `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"queue","direction":"out","name":"$return","queueName":%q}]}`,
				reply: `{"ReturnValue":"returned value"}`, want: []string{"returned value"}},
			{fn: "Null", reply: `{"Outputs":{"out":null}}`, want: nil},
		})
	})

	t.Run("none", func(t *testing.T) {
		t.Parallel()
		run(t, "none", []tc{
			{fn: "Object", reply: `{"Outputs":{"out":{"a":"x"}}}`, want: []string{"{\n  \"a\": \"x\"\n}"}},
			{fn: "PlainString", reply: `{"Outputs":{"out":"hello"}}`, want: []string{"hello"}},
		})
	})

	t.Run("StoredTextOfTrap", func(t *testing.T) {
		t.Parallel()
		// Written with base64 encoding, the bytes b5 eb 2d are stored as "test" again,
		// while "hello" is stored encoded.
		a := newApp(t)
		a.env["AzureWebJobsStorage"] = conn
		qTrap, qHello := queueName("stored-trap"), queueName("stored-hello")
		a.function("Trap", queueOut(qTrap, ""))
		a.function("Hello", queueOut(qHello, ""))
		a.reply("Trap", jsonReply(200, `{"Outputs":{"out":"test"}}`))
		a.reply("Hello", jsonReply(200, `{"Outputs":{"out":"hello"}}`))
		a.start()
		get(t, a.url("/api/Trap"))
		get(t, a.url("/api/Hello"))
		if got := peek(t, queueClient(t, qTrap)); !slices.Equal(got, []string{"test"}) {
			t.Errorf("stored %q, want [test]", got)
		}
		if got := peek(t, queueClient(t, qHello)); !slices.Equal(got, []string{"aGVsbG8="}) {
			t.Errorf("stored %q, want [aGVsbG8=]", got)
		}
	})
}

func TestHTTPOutputs(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	type tc struct {
		fn, reply   string
		status      int
		body        string
		contentType string
		header      [2]string
	}
	cases := []tc{
		{fn: "Number", reply: `{"Outputs":{"res":{"statusCode":201,"body":"made","headers":{"X-Custom":"v1"}}}}`,
			status: 201, body: "made", contentType: "text/plain; charset=utf-8", header: [2]string{"X-Custom", "v1"}},
		{fn: "NumericString", reply: `{"Outputs":{"res":{"statusCode":"202","body":"ok"}}}`,
			status: 202, body: "ok", contentType: "text/plain; charset=utf-8"},
		{fn: "MissingStatus", reply: `{"Outputs":{"res":{"body":"no status"}}}`,
			status: 200, body: "no status", contentType: "text/plain; charset=utf-8"},
		{fn: "ObjectBody", reply: `{"Outputs":{"res":{"body":{"a":1,"b":[true]}}}}`,
			status: 200, body: "{\n  \"a\": 1,\n  \"b\": [\n    true\n  ]\n}", contentType: "text/plain; charset=utf-8"},
		{fn: "ContentType", reply: `{"Outputs":{"res":{"body":"{\"x\":1}","headers":{"Content-Type":"application/json"}}}}`,
			status: 200, body: `{"x":1}`, contentType: "application/json"},
		{fn: "LowerCaseNames", reply: `{"Outputs":{"res":{"statuscode":418,"BODY":"teapot"}}}`,
			status: 418, body: "teapot", contentType: "text/plain; charset=utf-8"},
		{fn: "NoOutput", reply: `{"Outputs":{}}`, status: 200, body: "{}"},
		{fn: "NotJSONString", reply: `{"Outputs":{"res":"not json"}}`, status: 500, body: ""},
		{fn: "Failed", reply: "", status: 500, body: ""},
	}
	for _, c := range cases {
		a.function(c.fn, httpAnon)
		if c.reply == "" {
			a.reply(c.fn, jsonReply(500, `{"Outputs":{"res":{"statusCode":200,"body":"ignored"}}}`))
		} else {
			a.reply(c.fn, jsonReply(200, c.reply))
		}
	}
	a.function("ReturnValue", `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},
 {"type":"http","direction":"out","name":"$return"}]}`)
	a.reply("ReturnValue", jsonReply(200, `{"ReturnValue":{"statusCode":203,"body":"via return"}}`))
	cases = append(cases, tc{fn: "ReturnValue", status: 203, body: "via return", contentType: "text/plain; charset=utf-8"})
	a.start()

	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			t.Parallel()
			resp := get(t, a.url("/api/"+c.fn))
			if resp.Status != c.status || resp.Body != c.body {
				t.Errorf("got %d %q, want %d %q", resp.Status, resp.Body, c.status, c.body)
			}
			if c.contentType != "" && resp.Header.Get("Content-Type") != c.contentType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), c.contentType)
			}
			if c.header[0] != "" && resp.Header.Get(c.header[0]) != c.header[1] {
				t.Errorf("%s = %q, want %q", c.header[0], resp.Header.Get(c.header[0]), c.header[1])
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// HTTP front: routes, methods and throttling.

func TestHTTPRouting(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.set("extensions.http.routePrefix", "v1")
	a.function("Items", `{"bindings":[
 {"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get"],"route":"items/{id}/{name?}"},
 {"type":"http","direction":"out","name":"res"}]}`)
	a.function("AnyMethod", httpAnon)
	a.start()

	cases := []struct {
		method, path string
		status       int
		fn           string
		params       map[string]string
	}{
		{"GET", "/v1/items/1", 200, "Items", map[string]string{"id": "1"}},
		{"GET", "/v1/items/1/x", 200, "Items", map[string]string{"id": "1", "name": "x"}},
		{"GET", "/v1/ITEMS/2", 200, "Items", map[string]string{"id": "2"}},
		{"GET", "/v1/items", 404, "", nil},
		{"GET", "/v1/items/1/x/y", 404, "", nil},
		{"POST", "/v1/items/1", 404, "", nil},
		{"DELETE", "/v1/items/1", 404, "", nil},
		{"GET", "/api/items/1", 404, "", nil},
		{"GET", "/v1/AnyMethod", 200, "AnyMethod", map[string]string{}},
		{"DELETE", "/v1/anymethod", 200, "AnyMethod", map[string]string{}},
		{"PATCH", "/v1/AnyMethod", 200, "AnyMethod", map[string]string{}},
	}
	for _, c := range cases {
		before := map[string]int{"Items": len(a.invocations("Items")), "AnyMethod": len(a.invocations("AnyMethod"))}
		resp := send(t, c.method, a.url(c.path), nil, nil)
		if resp.Status != c.status {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, resp.Status, c.status)
			continue
		}
		for fn, n := range before {
			now := a.invocations(fn)
			want := n
			if fn == c.fn {
				want++
			}
			if len(now) != want {
				t.Errorf("%s %s: %s invoked %d more times, want %d", c.method, c.path, fn, len(now)-n, want-n)
				continue
			}
			if fn != c.fn {
				continue
			}
			var data struct {
				Data struct{ Req httpRequestData }
			}
			if err := json.Unmarshal([]byte(now[len(now)-1].Body), &data); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range data.Data.Req.Params {
				got[k] = fmt.Sprint(v)
			}
			if !mapsEqual(got, c.params) {
				t.Errorf("%s %s: Params = %v, want %v", c.method, c.path, got, c.params)
			}
			if data.Data.Req.Method != c.method {
				t.Errorf("%s %s: Method = %q", c.method, c.path, data.Data.Req.Method)
			}
		}
	}
}

func TestMaxOutstandingRequests(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.set("extensions.http.maxOutstandingRequests", 1)
	a.function("Slow", httpAnon)
	release := filepath.Join(t.TempDir(), "release")
	a.reply("Slow", reply{HoldFile: release})
	h := a.start()

	first := make(chan response, 1)
	go func() {
		// send may not call t.Fatal off the test goroutine, so errors come back as 0.
		resp, err := httpClient.Get(a.url("/api/Slow"))
		if err != nil {
			first <- response{}
			return
		}
		resp.Body.Close()
		first <- response{Status: resp.StatusCode}
	}()
	// Once the handler holds the first request, it is the one outstanding request.
	a.waitInvocations("Slow", 1)
	if got := get(t, a.url("/api/Slow")).Status; got != http.StatusTooManyRequests {
		t.Errorf("second request = %d, want 429", got)
	}
	if n := len(a.invocations("Slow")); n != 1 {
		t.Errorf("a throttled request reached the handler (%d invocations)", n)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := (<-first).Status; got != 200 {
		t.Errorf("first request = %d, want 200", got)
	}
	if got := get(t, a.url("/api/Slow")).Status; got != 200 {
		t.Errorf("request after the first finished = %d, want 200", got)
	}
	if got := h.Stats().HTTPThrottled; got != 1 {
		t.Errorf("Stats.HTTPThrottled = %d, want 1", got)
	}
}

func TestFunctionTimeoutHTTP(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.hostJSON["functionTimeout"] = "00:00:02"
	a.function("Slow", httpAnon)
	a.function("Fast", httpAnon)
	a.reply("Slow", reply{Hang: true})
	h := a.start()
	resp := get(t, a.url("/api/Slow"))
	if resp.Status != 500 || resp.Body != "" {
		t.Errorf("timed-out invocation gave %d %q, want 500 with an empty body", resp.Status, resp.Body)
	}
	if got := h.Stats().Timeouts; got != 1 {
		t.Errorf("Stats.Timeouts = %d, want 1", got)
	}
	if got := get(t, a.url("/api/Fast")).Status; got != 200 {
		t.Errorf("the next invocation = %d, want 200", got)
	}
}

// ---------------------------------------------------------------------------------
// Queue settlement.

func TestQueueSettlement(t *testing.T) {
	t.Parallel()
	conn := storage(t)

	queueApp := func(t *testing.T, fn string) (*app, *azqueue.QueueClient, *azqueue.QueueClient) {
		a := newApp(t)
		qn := queueName("settle-" + fn)
		a.env["AzureWebJobsStorage"] = conn
		a.function(fn, queueTriggered(qn))
		return a, queueClient(t, qn), queueClient(t, qn+"-poison")
	}

	t.Run("SuccessDeletes", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Ok")
		a.start()
		enqueue(t, q, b64("fine"))
		a.waitInvocations("Ok", 1)
		waitFor(t, "the message to be deleted", func() bool { return messageCount(t, q) == 0 })
		if n := messageCount(t, poison); n != 0 {
			t.Errorf("poison queue has %d messages", n)
		}
	})

	t.Run("RetriedUntilSuccess", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Flaky")
		a.reply("Flaky", jsonReply(500, `{}`), jsonReply(200, `{}`))
		a.start()
		enq := enqueue(t, q, b64("try twice"))
		invs := a.waitInvocations("Flaky", 2)
		waitFor(t, "the message to be deleted", func() bool { return messageCount(t, q) == 0 })
		for i, r := range invs[:2] {
			meta := decodeEnvelope(t, r).Metadata
			if got, want := str(t, meta, "DequeueCount"), strconv.Itoa(i+1); got != want {
				t.Errorf("delivery %d: DequeueCount = %q, want %q", i+1, got, want)
			}
			if got := str(t, meta, "Id"); got != quoted(*enq.MessageID) {
				t.Errorf("delivery %d: Id = %q, want the same message", i+1, got)
			}
		}
		if n := messageCount(t, poison); n != 0 {
			t.Errorf("poison queue has %d messages", n)
		}
	})

	t.Run("PoisonAfterMaxDequeueCount", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Failing")
		a.set("extensions.queues.maxDequeueCount", 2)
		a.reply("Failing", jsonReply(500, `{}`))
		h := a.start()
		stored := b64("always fails")
		enqueue(t, q, stored)
		waitFor(t, "the message in the poison queue", func() bool { return len(peek(t, poison)) == 1 })
		if got := peek(t, poison); got[0] != stored {
			t.Errorf("poison message = %q, want the stored body %q", got[0], stored)
		}
		if n := messageCount(t, q); n != 0 {
			t.Errorf("the queue still has %d messages", n)
		}
		invs := a.invocations("Failing")
		if len(invs) != 2 {
			t.Fatalf("%d invocations, want 2 (maxDequeueCount)", len(invs))
		}
		for i, r := range invs {
			if got, want := str(t, decodeEnvelope(t, r).Metadata, "DequeueCount"), strconv.Itoa(i+1); got != want {
				t.Errorf("delivery %d: DequeueCount = %q, want %q", i+1, got, want)
			}
		}
		if got := h.Stats().Poisoned; got != 1 {
			t.Errorf("Stats.Poisoned = %d", got)
		}
	})

	t.Run("NotBase64GoesToPoisonUninvoked", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Strict")
		h := a.start()
		const raw = "this is not base64!"
		enqueue(t, q, raw)
		waitFor(t, "the message in the poison queue", func() bool { return len(peek(t, poison)) == 1 })
		if got := peek(t, poison); got[0] != raw {
			t.Errorf("poison message = %q, want %q", got[0], raw)
		}
		if n := messageCount(t, q); n != 0 {
			t.Errorf("the queue still has %d messages", n)
		}
		if n := len(a.invocations("Strict")); n != 0 {
			t.Errorf("the function was invoked %d times for an undecodable message", n)
		}
		if got := h.Stats().DecodeFailures; got != 1 {
			t.Errorf("Stats.DecodeFailures = %d", got)
		}
	})

	t.Run("OverMaxBeforeInvocation", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Late")
		a.set("extensions.queues.maxDequeueCount", 2)
		stored := b64("dequeued twice already")
		enqueue(t, q, stored)
		// Someone else received it twice; the host's receive makes it the third time.
		for range 2 {
			resp, err := q.DequeueMessage(t.Context(), &azqueue.DequeueMessageOptions{VisibilityTimeout: ptr(int32(1))})
			if err != nil || len(resp.Messages) != 1 {
				t.Fatalf("dequeue: %v", err)
			}
			m := resp.Messages[0]
			if _, err := q.UpdateMessage(t.Context(), *m.MessageID, *m.PopReceipt, *m.MessageText,
				&azqueue.UpdateMessageOptions{VisibilityTimeout: ptr(int32(0))}); err != nil {
				t.Fatalf("update: %v", err)
			}
		}
		a.start()
		waitFor(t, "the message in the poison queue", func() bool { return len(peek(t, poison)) == 1 })
		if got := peek(t, poison); got[0] != stored {
			t.Errorf("poison message = %q, want %q", got[0], stored)
		}
		if n := len(a.invocations("Late")); n != 0 {
			t.Errorf("invoked %d times for a message past maxDequeueCount", n)
		}
	})

	t.Run("PoisonQueueFailureStaysInvisible", func(t *testing.T) {
		t.Parallel()
		// A queue whose name ends in -poison has no poison queue of its own: the host
		// neither moves nor releases a failed message, so it stays invisible until its
		// 10-minute receive visibility ends.
		a := newApp(t)
		qn := queueName("settle-own") + "-poison"
		a.env["AzureWebJobsStorage"] = conn
		a.function("FromPoison", queueTriggered(qn))
		a.reply("FromPoison", jsonReply(500, `{}`))
		h := a.start()
		q := queueClient(t, qn)
		enqueue(t, q, b64("still failing"))
		a.waitInvocations("FromPoison", 1)
		waitFor(t, "the failure to be settled", func() bool { return h.Stats().Failures == 1 })
		if n := messageCount(t, q); n != 1 {
			t.Errorf("the queue holds %d messages, want the failed one", n)
		}
		if got := peek(t, q); len(got) != 0 {
			t.Errorf("the failed message is visible again: %q", got)
		}
		if n := messageCount(t, queueClient(t, qn+"-poison")); n != 0 {
			t.Errorf("a -poison-poison queue got %d messages", n)
		}
	})

	t.Run("ConcurrentDeliveries", func(t *testing.T) {
		t.Parallel()
		a, q, _ := queueApp(t, "Parallel")
		release := filepath.Join(t.TempDir(), "release")
		a.reply("Parallel", reply{HoldFile: release})
		a.start()
		enqueue(t, q, b64("one"))
		enqueue(t, q, b64("two"))
		// Both are in the handler at once: the host runs a batch concurrently.
		a.waitInvocations("Parallel", 2)
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "both messages to be deleted", func() bool { return messageCount(t, q) == 0 })
	})

	t.Run("EnvOverridesHostJSON", func(t *testing.T) {
		t.Parallel()
		a, q, poison := queueApp(t, "Hanging")
		a.hostJSON["functionTimeout"] = "00:10:00"
		a.set("extensions.queues.maxDequeueCount", 5)
		a.env["AzureFunctionsJobHost__functionTimeout"] = "00:00:02"
		a.env["AzureFunctionsJobHost__extensions__queues__maxDequeueCount"] = "1"
		a.reply("Hanging", reply{Hang: true})
		h := a.start()
		stored := b64("takes forever")
		enqueue(t, q, stored)
		// Only the overrides get this message to poison: a 10-minute timeout or five
		// deliveries would not finish within the wait.
		waitFor(t, "the message in the poison queue", func() bool { return len(peek(t, poison)) == 1 })
		if n := len(a.invocations("Hanging")); n != 1 {
			t.Errorf("%d invocations, want 1", n)
		}
		if got := h.Stats().Timeouts; got != 1 {
			t.Errorf("Stats.Timeouts = %d, want 1", got)
		}
	})
}

func TestFunctionKeys(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Default", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}`)
	a.function("Admin", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"admin"},{"type":"http","direction":"out","name":"res"}]}`)
	a.function("Open", httpAnon)
	a.start(func(o *funchost.Options) {
		o.EnforceKeys = true
		o.FunctionKey = "fkey"
		o.MasterKey = "mkey"
	})
	cases := []struct {
		path   string
		header string
		status int
	}{
		{"/api/Default", "", 401},
		{"/api/Default?code=wrong", "", 401},
		{"/api/Default?code=fkey", "", 200},
		{"/api/Default", "fkey", 200},
		{"/api/Default?code=mkey", "", 200},
		{"/api/Admin?code=fkey", "", 401},
		{"/api/Admin", "mkey", 200},
		{"/api/Open", "", 200},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.header != "" {
			h.Set("x-functions-key", c.header)
		}
		if got := send(t, http.MethodGet, a.url(c.path), nil, h).Status; got != c.status {
			t.Errorf("GET %s (key header %q) = %d, want %d", c.path, c.header, got, c.status)
		}
	}
	// The key never reaches the handler as binding data.
	for _, r := range a.invocations("Default") {
		if _, ok := decodeEnvelope(t, r).Metadata["code"]; ok {
			t.Error("Metadata carries the code query parameter")
		}
	}
	if n := len(a.invocations("Default")) + len(a.invocations("Admin")); n != 4 {
		t.Errorf("%d authorised invocations, want 4", n)
	}
}

// ---------------------------------------------------------------------------------
// The handler process.

func TestHandlerRestartAfterKill(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	h := a.start()
	first := h.HandlerPID()
	if first == 0 || first != a.kind("start")[0].PID {
		t.Fatalf("HandlerPID = %d, handler started as %+v", first, a.kind("start"))
	}
	h.KillHandler()
	waitFor(t, "a new handler process", func() bool {
		pid := h.HandlerPID()
		return pid != 0 && pid != first
	})
	second := h.HandlerPID()
	if got := get(t, a.url("/api/Ping")).Status; got != 200 {
		t.Fatalf("GET after restart = %d", got)
	}
	invs := a.invocations("Ping")
	if len(invs) != 1 || invs[0].PID != second {
		t.Errorf("the request was served by %+v, want the new process %d", invs, second)
	}
	starts := a.kind("start")
	if len(starts) != 2 || starts[1].PID != second {
		t.Errorf("handler starts: %+v", starts)
	}
	if got := h.Stats().Restarts; got != 1 {
		t.Errorf("Stats.Restarts = %d, want 1", got)
	}
}

func TestStopTerminatesHandler(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.function("Ping", httpAnon)
	h := a.start()
	pid := h.HandlerPID()
	url := a.url("/api/Ping")
	if got := get(t, url).Status; got != 200 {
		t.Fatalf("GET = %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stop returns once the handler has exited, so its last words are on record.
	sigs := a.kind("signal")
	if len(sigs) != 1 || sigs[0].PID != pid || sigs[0].Signal != "terminated" {
		t.Errorf("signals received: %+v, want SIGTERM to %d", sigs, pid)
	}
	if resp, err := httpClient.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("the HTTP front still answers after Stop: %d", resp.StatusCode)
	}
	if err := h.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if n := len(a.kind("start")); n != 1 {
		t.Errorf("the handler was started again after Stop (%d starts)", n)
	}
}
