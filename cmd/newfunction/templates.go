package main

import "text/template"

// templates hold the generated files, <trigger>.go and <trigger>_test.go. The packages
// follow functions/notify (queue) and functions/read (HTTP): a Name constant matching
// the folder, a Function struct holding the dependencies, a Registration, and Invoke. The
// tests drive the function through the handler's invocation server, with envelopes in
// the form the Functions host really sends, and check function.json against the binding
// names the code reads.
var templates = template.Must(template.New("").Parse(`
{{define "common"}}
// Name is the function's folder; the host calls POST /{{.Name}}.
const Name = "{{.Name}}"

// Function {{.Does}}. Its dependencies (a store, a client) are fields, set where
// handler/functions.go registers it.
type Function struct{}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, {{.RegistrationFields}}, Func: f}
}
{{end}}

{{define "queue.go"}}// Package {{.Package}} handles the messages of queue {{.Queue}}.
//
// Returning a nil error settles a message. Returning an error makes the host redeliver
// it after host.json's visibilityTimeout and, after maxDequeueCount failed deliveries,
// move a bare copy to {{.Queue}}-poison. To poison a message that can never succeed at
// once, with its reason, or to ride out a dependency's outage for longer, give Function a
// *redelivery.Queue and call its Poison and Defer as functions/notify does.
package {{.Package}}

import (
	"context"

	"{{.Module}}/internal/invocation"
)

// binding is the name of the queue trigger in {{.Name}}/function.json.
const binding = "{{.Binding}}"
{{template "common" .}}
// Invoke handles one message from queue {{.Queue}}.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	msg, err := inv.Request.QueueTrigger(binding)
	if err != nil {
		return nil, err
	}
	// The function's work goes here; msg.Text is the message as it was enqueued.
	inv.Log("message received", "message_id", msg.ID, "dequeue_count", msg.DequeueCount, "bytes", len(msg.Text))
	return &invocation.Response{}, nil
}
{{end}}

{{define "http.go"}}// Package {{.Package}} answers {{.MethodsUpper}} {{.Path}}.
//
// Whatever goes wrong, the caller gets an answer through the HTTP output: a problem
// document with a 4xx status for a bad request, never the host's bare 500. To read a JSON
// body, use invocation.JSONBody as functions/ingest does.
package {{.Package}}

import (
	"context"
	"net/http"

	"{{.Module}}/functions/httpshed"
	"{{.Module}}/internal/invocation"
)

// binding is the name of the HTTP trigger in {{.Name}}/function.json; its output is
// "{{.Output}}", which httpshed.Reply writes.
const binding = "{{.Binding}}"
{{template "common" .}}
// Answer is the JSON document the function returns.
type Answer struct {
	Function string            ` + "`json:\"function\"`" + `
	Method   string            ` + "`json:\"method\"`" + `
	Params   map[string]string ` + "`json:\"params\"`" + `
	Query    map[string]string ` + "`json:\"query\"`" + `
}

// Invoke answers one request.
func (f *Function) Invoke(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	req, err := inv.Request.HTTPTrigger(binding)
	if err != nil {
		return httpshed.Reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()})), nil
	}
	// The function's work goes here.
	inv.Log("request received", "method", req.Method)
	return httpshed.Reply(invocation.JSONResponse(http.StatusOK, Answer{
		Function: Name, Method: req.Method, Params: req.Params, Query: req.Query,
	}, nil)), nil
}
{{end}}

{{define "test helpers"}}
// serve sends data and metadata to the function the way the Functions host does.
func serve(t *testing.T, data, metadata map[string]any) *httptest.ResponseRecorder {
	t.Helper()
	srv, err := invocation.NewServer(invocation.ServerOptions{Logger: slog.New(slog.DiscardHandler)}, Registration(&Function{}))
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"Data": data, "Metadata": metadata})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/"+Name, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", "7d0f4a8e-3c2b-4e51-9a06-1f2e3d4c5b6a")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

type bindingJSON struct{ Type, Direction, Name, QueueName string }

// functionJSON reads the bindings the host reads for this function.
func functionJSON(t *testing.T) []bindingJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", Name, "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Bindings []bindingJSON }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Bindings
}
{{end}}

{{define "test imports"}}
import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	{{- range .TestImports}}
	"{{.}}"
	{{- end}}
	"testing"

	"{{.Module}}/internal/invocation"
)
{{end}}

{{define "queue_test.go"}}package {{.Package}}
{{template "test imports" .}}{{template "test helpers" .}}
// hostString serialises s once; serve serialises the envelope, which makes twice, the
// way the host sends strings.
func hostString(t *testing.T, s string) string {
	t.Helper()
	once, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(once)
}

func TestMessageIsSettled(t *testing.T) {
	const id = "2b7e5a41-90c3-4f6d-8e12-5a4b3c2d1e0f"
	text := ` + "`" + `{"hello":"world"}` + "`" + `
	rec := serve(t, map[string]any{binding: hostString(t, text)}, map[string]any{"Id": hostString(t, id), "DequeueCount": "1"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 (the message is settled); body %s", rec.Code, rec.Body)
	}
	var resp invocation.Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", rec.Body, err)
	}
	want := "message received message_id=" + id + " dequeue_count=1 bytes=" + strconv.Itoa(len(text))
	if !slices.Contains(resp.Logs, want) {
		t.Errorf("logs = %q, want a line %q", resp.Logs, want)
	}
}

func TestMissingMessageIsRedelivered(t *testing.T) {
	if rec := serve(t, map[string]any{}, map[string]any{}); rec.Code == http.StatusOK {
		t.Fatal("an envelope without the message was settled; it must fail so the host redelivers it")
	}
}

// TestFunctionJSON checks that the folder the host reads names the trigger this code
// reads.
func TestFunctionJSON(t *testing.T) {
	bs := functionJSON(t)
	if len(bs) == 0 || bs[0].Type != "queueTrigger" || bs[0].Name != binding || bs[0].QueueName == "" {
		t.Fatalf("bindings = %+v, want first a queueTrigger named %q with a queueName", bs, binding)
	}
}
{{end}}

{{define "http_test.go"}}package {{.Package}}
{{template "test imports" .}}{{template "test helpers" .}}
// answer returns the HTTP output the function answered data with.
func answer(t *testing.T, data map[string]any) invocation.HTTPResponse {
	t.Helper()
	rec := serve(t, data, map[string]any{})
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 (an HTTP function always answers through its output); body %s", rec.Code, rec.Body)
	}
	var resp struct {
		Outputs map[string]invocation.HTTPResponse
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", rec.Body, err)
	}
	out, ok := resp.Outputs["{{.Output}}"]
	if !ok {
		t.Fatalf("answer %s has no output %q", rec.Body, "{{.Output}}")
	}
	return out
}

func TestRequestIsAnswered(t *testing.T) {
	out := answer(t, map[string]any{binding: map[string]any{
		"Url":     "http://localhost:7071{{.Path}}?q=1",
		"Method":  "GET",
		"Query":   map[string]string{"q": "1"},
		"Headers": map[string][]string{"Accept": {"application/json"}},
		"Params":  map[string]string{},
	}})
	if out.StatusCode != http.StatusOK || out.Headers["Content-Type"] != "application/json" {
		t.Fatalf("answer = %d %v, want 200 application/json", out.StatusCode, out.Headers)
	}
	var a Answer
	if err := json.Unmarshal([]byte(out.Body), &a); err != nil {
		t.Fatalf("body %q: %v", out.Body, err)
	}
	if a.Function != Name || a.Method != "GET" || a.Query["q"] != "1" {
		t.Errorf("answer = %+v, want function %s, method GET, query q=1", a, Name)
	}
}

func TestMissingRequestIsA400(t *testing.T) {
	out := answer(t, map[string]any{})
	if out.StatusCode != http.StatusBadRequest || out.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("answer = %d %v, want 400 application/problem+json", out.StatusCode, out.Headers)
	}
}

// TestFunctionJSON checks that the folder the host reads names the trigger and the
// output this code uses.
func TestFunctionJSON(t *testing.T) {
	var trigger, output bool
	for _, b := range functionJSON(t) {
		trigger = trigger || (b.Type == "httpTrigger" && b.Name == binding)
		output = output || (b.Type == "http" && b.Direction == "out" && b.Name == "{{.Output}}")
	}
	if !trigger || !output {
		t.Fatalf("want an httpTrigger named %q and an http output named %q in function.json", binding, "{{.Output}}")
	}
}
{{end}}
`))
