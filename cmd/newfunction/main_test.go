package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/funchost"
)

// repoRoot is the repository this test runs in: two levels above cmd/newfunction.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// copyRepo copies the repository's sources to a temporary folder, leaving out what is
// not source (.git, build output, node_modules, which is linked instead).
func copyRepo(t *testing.T) string {
	t.Helper()
	src, dst := repoRoot(t), t.TempDir()
	skip := []string{".git", "node_modules", "bin", "dist", "bench-results", ".azure"}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && slices.Contains(skip, rel) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "node_modules")); err == nil {
		if err := os.Symlink(filepath.Join(src, "node_modules"), filepath.Join(dst, "node_modules")); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// handlerFixture stands for handler/functions.go: imports, a type, a local variable and
// the marker, independent of the functions the real handler registers.
const handlerFixture = `package main

import (
	"example.com/shop/functions/health"
	"example.com/shop/internal/config"
	"example.com/shop/internal/invocation"
)

type app struct{ registrations []invocation.Registration }

func newApp(cfg *config.Config) *app {
	store := cfg
	a := &app{}
	a.registrations = []invocation.Registration{
		health.Registration(&health.Function{Store: store}),
		` + registrationMarker + `
	}
	return a
}
`

// miniRoot is the smallest tree generate works in: go.mod, host.json, the handler's
// registration file, one function and the functions/ folder.
func miniRoot(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":                         "module example.com/shop\n\ngo 1.26\n",
		"host.json":                      `{"version":"2.0","extensions":{"http":{"routePrefix":"api"}}}`,
		"handler/functions.go":           handlerFixture,
		"health/function.json":           `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"health"},{"type":"http","direction":"out","name":"res"}]}`,
		"functions/httpshed/httpshed.go": "package httpshed\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// freeName returns base, or base with a number, such that no folder of that name (or
// of its package) exists under root: the copy may be of a tree that has functions of
// its own.
func freeName(t *testing.T, root, base string) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s%d", base, i)
		}
		if checkFree(root, name, packageName(name)) == nil {
			return name
		}
	}
	t.Fatalf("no free name like %s", base)
	return ""
}

// snapshot lists every file under root with its content, to show that a refused run
// changed nothing.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestRefusedNamesWriteNothing(t *testing.T) {
	root := miniRoot(t)
	if err := os.Mkdir(filepath.Join(root, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	for _, c := range []struct {
		spec spec
		want string
	}{
		{spec{Name: "Health", Trigger: "queue"}, "already exists"},
		{spec{Name: "orders", Trigger: "http"}, "already exists"},
		{spec{Name: "http-shed", Trigger: "http"}, "already exists"},
		{spec{Name: "host", Trigger: "queue"}, "function name"},
		{spec{Name: "9lives", Trigger: "queue"}, "function name"},
		{spec{Name: "a.b", Trigger: "queue"}, "function name"},
		{spec{Name: "internal", Trigger: "queue"}, "project's own code"},
		{spec{Name: "select", Trigger: "queue"}, "Go reserves"},
		{spec{Name: "app", Trigger: "queue"}, "clash"},    // a type in the handler
		{spec{Name: "store", Trigger: "queue"}, "clash"},  // a local variable in newApp
		{spec{Name: "config", Trigger: "queue"}, "clash"}, // an import
		{spec{Name: "audit", Trigger: "timer"}, "-trigger"},
		{spec{Name: "audit", Trigger: "queue", Queue: "Audit"}, "queue name"},
		{spec{Name: "audit", Trigger: "queue", Queue: "a--b"}, "queue name"},
		{spec{Name: "ab", Trigger: "queue"}, "queue name"}, // the default queue is too short
		{spec{Name: "audit", Trigger: "http", Methods: []string{"fetch"}}, "-methods"},
		{spec{Name: "audit", Trigger: "http", Methods: []string{"get"}, Route: "a b"}, "-route"},
		{spec{Name: "audit", Trigger: "http", Methods: []string{"get"}, Auth: "none"}, "-auth"},
	} {
		_, err := generate(root, c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one mentioning %q", c.spec, err, c.want)
		}
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Error("a refused run changed the tree")
	}
}

func TestMissingMarkerWritesNothing(t *testing.T) {
	root := miniRoot(t)
	file := filepath.Join(root, "handler", "functions.go")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, bytes.ReplaceAll(b, []byte(registrationMarker), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	_, err = generate(root, spec{Name: "audit", Trigger: "queue"})
	if err == nil || !strings.Contains(err.Error(), "exactly once") {
		t.Errorf("err = %v, want one naming the missing marker", err)
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Error("a refused run changed the tree")
	}
}

// TestFunctionJSONMatchesSchema validates the generated function.json files against the
// published function.json schema (Draft 7, as test/deploy does), when the snapshot of
// the schemas sits beside the repository.
func TestFunctionJSONMatchesSchema(t *testing.T) {
	schemaFile := filepath.Join(repoRoot(t), "..", "shared", "schemas", "function.schema.json")
	raw, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Skipf("schema snapshot not found beside the repository (%v)", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	delete(doc.(map[string]any), "$schema") // it says draft-04 but relies on const
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	url := (&neturl.URL{Scheme: "file", Path: filepath.ToSlash(schemaFile)}).String()
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}

	root := miniRoot(t)
	for _, s := range []spec{
		{Name: "audit", Trigger: "queue", Queue: "audit-events"},
		{Name: "greet_me", Trigger: "http", Route: "/greet/{who}/", Methods: []string{"GET", "post"}, Auth: "anonymous"},
	} {
		if _, err := generate(root, s); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		b, err := os.ReadFile(filepath.Join(root, s.Name, "function.json"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("%s/function.json: %v\n%s", s.Name, err, b)
		}
	}
	var fn struct{ Bindings []binding }
	b, _ := os.ReadFile(filepath.Join(root, "greet_me", "function.json"))
	if err := json.Unmarshal(b, &fn); err != nil {
		t.Fatal(err)
	}
	if got := fn.Bindings[0]; got.Route != "greet/{who}" || !slices.Equal(got.Methods, []string{"get", "post"}) || got.AuthLevel != "anonymous" {
		t.Errorf("http trigger = %+v, want route greet/{who}, methods get and post, authLevel anonymous", got)
	}

	// Control: the validator must be able to fail.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"nobody"}]}`))
	if schema.Validate(bad) == nil {
		t.Error("the schema accepted authLevel nobody; the validator is not checking")
	}
}

// TestGeneratedFunctionsRun generates a queue and an HTTP function in a copy of the
// repository, builds and vets the whole module, runs the generated tests, and then serves
// the copy through the host imitation with Azurite: a message on the new queue and a
// request on the new route must reach the new functions through the real handler.
func TestGeneratedFunctionsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the repository")
	}
	root := copyRepo(t)
	queueFn, httpFn := freeName(t, root, "sample-queue"), freeName(t, root, "sample-http")
	queueName := queueFn + "-events"
	queueRes, err := generate(root, spec{Name: queueFn, Trigger: "queue", Queue: queueName})
	if err != nil {
		t.Fatal(err)
	}
	httpRes, err := generate(root, spec{Name: httpFn, Trigger: "http", Route: httpFn + "/{who}", Methods: []string{"get", "post"}, Auth: "function"})
	if err != nil {
		t.Fatal(err)
	}
	qpkg := packageName(queueFn)
	want := []string{queueFn + "/function.json", "functions/" + qpkg + "/" + qpkg + ".go", "functions/" + qpkg + "/" + qpkg + "_test.go"}
	if !slices.Equal(queueRes.Created, want) || httpRes.Package != packageName(httpFn) {
		t.Errorf("created %v (package %s), want %v and package %s", queueRes.Created, httpRes.Package, want, packageName(httpFn))
	}
	handler, err := os.ReadFile(filepath.Join(root, "handler", "functions.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{queueRes.Registration, httpRes.Registration} {
		if bytes.Count(handler, []byte(line)) != 1 {
			t.Errorf("handler/functions.go does not hold %q once", line)
		}
	}
	goCmd(t, root, "build", "./...")
	goCmd(t, root, "vet", "./...")
	goCmd(t, root, "test", "-count=1", "./functions/"+qpkg, "./functions/"+httpRes.Package)
	goCmd(t, root, "build", "-o", filepath.Join(root, "bin", "handler"), "./handler")

	az := azurite.StartT(t, azurite.Options{RepoRoot: root})
	console := &watcher{want: `"msg":"message received","function":"` + queueFn + `"`, seen: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := funchost.Start(ctx, funchost.Options{
		ScriptRoot: root,
		HTTPAddr:   "127.0.0.1:0",
		Console:    console,
		Env: map[string]string{
			"FUNCTIONS_WORKER_RUNTIME": "custom",
			"AzureWebJobsStorage":      az.ConnectionString,
			// Nothing listens there: the store is not used by the new functions, and
			// the handler prepares it in the background without holding anything up.
			"COSMOS_ENDPOINT":    "https://127.0.0.1:9/",
			"COSMOS_KEY":         "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==",
			"FULFILMENT_API_URL": "",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = h.Stop(sctx)
	}()

	resp, err := http.Get(h.URL() + "/api/" + httpFn + "/ada?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		Function string
		Params   map[string]string
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.Function != httpFn || answer.Params["who"] != "ada" {
		t.Errorf("GET /api/%s/ada = %d %s, want 200 from %s with who=ada", httpFn, resp.StatusCode, body, httpFn)
	}

	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := svc.NewQueueClient(queueName)
	if _, err := q.Create(ctx, nil); err != nil && !strings.Contains(err.Error(), "QueueAlreadyExists") {
		t.Fatal(err)
	}
	sent, err := q.EnqueueMessage(ctx, base64.StdEncoding.EncodeToString([]byte(`{"event":"login"}`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	id := *sent.Messages[0].MessageID
	select {
	case <-console.seen:
		if !strings.Contains(console.output(), `"message_id":"`+id+`"`) {
			t.Errorf("the handler logged a message, but not %s:\n%s", id, console.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the handler never logged message %s; stats %+v; console:\n%s", id, h.Stats(), console.output())
	}
	if st := h.Stats(); st.Failures != 0 || st.Poisoned != 0 {
		t.Errorf("stats = %+v, want no failures and nothing poisoned", st)
	}
}

// watcher keeps the handler's console output, written from the host's goroutines, and
// closes seen once it holds want.
type watcher struct {
	want string
	seen chan struct{}

	mu  sync.Mutex
	out []byte
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	found := bytes.Contains(w.out, []byte(w.want))
	w.out = append(w.out, p...)
	if !found && bytes.Contains(w.out, []byte(w.want)) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watcher) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.out)
}
