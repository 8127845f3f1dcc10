package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// spec is what the user asked for.
type spec struct {
	Name    string
	Trigger string // "queue" or "http"
	Queue   string
	Route   string
	Methods []string
	Auth    string
}

// result is what generate did.
type result struct {
	Package      string
	Created      []string // relative to the root, slash-separated
	Registration string
	Warnings     []string
	TryIt        string
}

// The host's naming rules (function folders case-insensitively, "host" reserved), and
// Storage's rules for queue names: 3 to 63 lower-case letters, digits and single
// hyphens, starting and ending with a letter or digit.
var (
	functionNameRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	queueNameRE    = regexp.MustCompile(`^[a-z0-9](-?[a-z0-9])+$`)
	routeRE        = regexp.MustCompile(`^[A-Za-z0-9_\-.~{}:*?=/]+$`)
)

var (
	httpMethods = []string{"get", "post", "delete", "head", "patch", "put", "options", "trace"}
	authLevels  = []string{"anonymous", "function", "admin"}
	// Folders at the root that are not functions; a function of that name would be
	// mistaken for, or hide, one of them.
	reservedFolders = []string{"bin", "cmd", "dist", "functions", "handler", "infra", "internal",
		"node_modules", "test", "bench-results"}
	// Names a Go package cannot have, or that an import in the handler would shadow.
	predeclared = []string{"any", "append", "bool", "byte", "cap", "clear", "close", "comparable",
		"complex", "complex64", "complex128", "copy", "delete", "error", "false", "float32", "float64",
		"imag", "init", "int", "int8", "int16", "int32", "int64", "iota", "len", "main", "make", "max",
		"min", "new", "nil", "panic", "print", "println", "real", "recover", "rune", "string", "true",
		"uint", "uint8", "uint16", "uint32", "uint64", "uintptr"}
)

// packageName derives the Go package from a function name: lower case, without the
// hyphens and underscores Go style leaves out of package names.
func packageName(name string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(name))
}

// check validates s, filling in defaults, against the rules of the host, of Storage and
// of Go.
func (s *spec) check() error {
	if s.Name == "" {
		return errors.New("-name is required")
	}
	if !functionNameRE.MatchString(s.Name) || strings.EqualFold(s.Name, "host") {
		return fmt.Errorf("-name %q: a function name starts with a letter and holds only letters, digits, - and _ (at most 128), and is not \"host\"", s.Name)
	}
	if slices.Contains(reservedFolders, strings.ToLower(s.Name)) {
		return fmt.Errorf("-name %q: that folder holds the project's own code; choose another name", s.Name)
	}
	pkg := packageName(s.Name)
	if token.IsKeyword(pkg) || slices.Contains(predeclared, pkg) {
		return fmt.Errorf("-name %q: its Go package would be %q, which Go reserves; choose another name", s.Name, pkg)
	}
	switch s.Trigger {
	case "queue":
		if s.Route != "" {
			return errors.New("-route is for -trigger http")
		}
		if s.Queue == "" {
			s.Queue = strings.ReplaceAll(strings.ToLower(s.Name), "_", "-")
		}
		if len(s.Queue) < 3 || len(s.Queue) > 63 || !queueNameRE.MatchString(s.Queue) {
			return fmt.Errorf("-queue %q: a queue name is 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit", s.Queue)
		}
	case "http":
		if s.Queue != "" {
			return errors.New("-queue is for -trigger queue")
		}
		if s.Route == "" {
			s.Route = strings.ToLower(s.Name)
		}
		s.Route = strings.Trim(s.Route, "/")
		if s.Route == "" || !routeRE.MatchString(s.Route) || strings.Contains(s.Route, "//") ||
			strings.Count(s.Route, "{") != strings.Count(s.Route, "}") {
			return fmt.Errorf("-route %q: want a route template such as orders/{id}, relative to the route prefix", s.Route)
		}
		if len(s.Methods) == 0 {
			s.Methods = []string{"get"}
		}
		if s.Auth == "" {
			s.Auth = "function"
		}
		for i, m := range s.Methods {
			s.Methods[i] = strings.ToLower(m)
			if !slices.Contains(httpMethods, s.Methods[i]) {
				return fmt.Errorf("-methods: %q is not one of %s", m, strings.Join(httpMethods, ", "))
			}
		}
		if !slices.Contains(authLevels, s.Auth) {
			return fmt.Errorf("-auth %q: want one of %s", s.Auth, strings.Join(authLevels, ", "))
		}
	case "":
		return errors.New("-trigger is required: queue or http")
	default:
		return fmt.Errorf("-trigger %q: want queue or http", s.Trigger)
	}
	return nil
}

// generate writes the function's files under root and registers it. It checks
// everything before it writes, and removes what it wrote if a later step fails.
func generate(root string, s spec) (res *result, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	handlerFile := filepath.Join(root, "handler", "functions.go")
	module, err := handlerModule(handlerFile)
	if err != nil {
		return nil, err
	}
	pkg := packageName(s.Name)
	if err := checkFree(root, s.Name, pkg); err != nil {
		return nil, err
	}
	importPath := module + "/functions/" + pkg
	line := pkg + ".Registration(&" + pkg + ".Function{}),"
	registered, err := register(handlerFile, importPath, pkg, line)
	if err != nil {
		return nil, err
	}
	fnJSON, err := functionJSON(s)
	if err != nil {
		return nil, err
	}
	prefix, warnings := scanExisting(root, s)
	data := templateData{spec: s, Package: pkg, Module: module, Path: urlPath(prefix, s.Route),
		MethodsUpper: strings.ToUpper(strings.Join(s.Methods, ", "))}
	if s.Trigger == "queue" {
		data.Does = "handles one message"
		data.Binding = queueBinding
		data.RegistrationFields = "Trigger: invocation.QueueTrigger"
		data.TestImports = []string{"slices", "strconv"}
	} else {
		data.Does = "answers one request"
		data.Binding, data.Output = requestBinding, responseBinding
		data.RegistrationFields = `Trigger: invocation.HTTPTrigger, HTTPOutput: "` + responseBinding + `"`
	}
	code, err := render(s.Trigger+".go", data)
	if err != nil {
		return nil, err
	}
	test, err := render(s.Trigger+"_test.go", data)
	if err != nil {
		return nil, err
	}
	res = &result{Package: pkg, Registration: line, Warnings: warnings, TryIt: tryIt(s, data.Path)}

	var made []string // folders created, removed again on failure
	defer func() {
		if err != nil {
			for _, d := range slices.Backward(made) {
				_ = os.RemoveAll(d)
			}
		}
	}()
	for _, d := range []string{filepath.Join(root, s.Name), filepath.Join(root, "functions", pkg)} {
		// Mkdir, not MkdirAll: an existing folder is an error, never merged into.
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		made = append(made, d)
	}
	files := []struct {
		rel  string
		body []byte
	}{
		{s.Name + "/function.json", fnJSON},
		{"functions/" + pkg + "/" + pkg + ".go", code},
		{"functions/" + pkg + "/" + pkg + "_test.go", test},
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(root, filepath.FromSlash(f.rel)), f.body); err != nil {
			return nil, err
		}
		res.Created = append(res.Created, f.rel)
	}
	if err := os.WriteFile(handlerFile, registered, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// checkFree refuses a name whose folder or package exists, compared case-insensitively
// because the host matches function names that way.
func checkFree(root, name, pkg string) error {
	for _, c := range []struct{ dir, want, what string }{
		{root, name, "a folder"},
		{filepath.Join(root, "functions"), pkg, "a package folder under functions/"},
	} {
		entries, err := os.ReadDir(c.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.EqualFold(e.Name(), c.want) {
				return fmt.Errorf("%s named %q already exists; nothing was written", c.what, e.Name())
			}
		}
	}
	return nil
}

func writeNew(path string, body []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// binding is one entry of function.json's bindings, as the host reads it.
type binding struct {
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Name       string   `json:"name"`
	AuthLevel  string   `json:"authLevel,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	Route      string   `json:"route,omitempty"`
	QueueName  string   `json:"queueName,omitempty"`
	Connection string   `json:"connection,omitempty"`
}

// The binding names the generated code reads; the host requires ^[a-zA-Z][a-zA-Z0-9]*$.
const (
	queueBinding   = "message"
	requestBinding = "req"
	// responseBinding is "res" because functions/httpshed.Reply writes that output.
	responseBinding = "res"
)

func functionJSON(s spec) ([]byte, error) {
	var bs []binding
	if s.Trigger == "queue" {
		bs = []binding{{Type: "queueTrigger", Direction: "in", Name: queueBinding, QueueName: s.Queue, Connection: "AzureWebJobsStorage"}}
	} else {
		bs = []binding{
			{Type: "httpTrigger", Direction: "in", Name: requestBinding, AuthLevel: s.Auth, Methods: s.Methods, Route: s.Route},
			{Type: "http", Direction: "out", Name: responseBinding},
		}
	}
	b, err := json.MarshalIndent(map[string]any{"bindings": bs}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// scanExisting reads host.json's route prefix and the other functions' triggers, and
// warns about a queue two functions would compete for or a route already taken.
func scanExisting(root string, s spec) (prefix string, warnings []string) {
	prefix = "api"
	if b, err := os.ReadFile(filepath.Join(root, "host.json")); err == nil {
		var h struct {
			Extensions struct {
				HTTP struct {
					RoutePrefix *string `json:"routePrefix"`
				} `json:"http"`
			} `json:"extensions"`
		}
		if json.Unmarshal(b, &h) == nil && h.Extensions.HTTP.RoutePrefix != nil {
			prefix = strings.Trim(*h.Extensions.HTTP.RoutePrefix, "/")
		}
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "function.json"))
		if !e.IsDir() || err != nil {
			continue
		}
		var doc struct{ Bindings []binding }
		if json.Unmarshal(b, &doc) != nil {
			continue
		}
		for _, bd := range doc.Bindings {
			switch {
			case s.Trigger == "queue" && strings.EqualFold(bd.Type, "queueTrigger") && bd.QueueName == s.Queue:
				warnings = append(warnings, fmt.Sprintf("%s also reads queue %s: the two functions will compete for its messages", e.Name(), s.Queue))
			case s.Trigger == "http" && strings.EqualFold(bd.Type, "httpTrigger") && strings.EqualFold(strings.Trim(bd.Route, "/"), s.Route):
				warnings = append(warnings, fmt.Sprintf("%s already serves route %s; the methods must not overlap", e.Name(), s.Route))
			}
		}
	}
	return prefix, warnings
}

// urlPath is the path a route is served at, under host.json's route prefix.
func urlPath(prefix, route string) string {
	if prefix == "" {
		return "/" + route
	}
	return "/" + prefix + "/" + route
}

func tryIt(s spec, path string) string {
	if s.Trigger == "queue" {
		return fmt.Sprintf("Once it runs, every message on queue %s is handed to %s; its log line shows the size and dequeue count.", s.Queue, s.Name)
	}
	return fmt.Sprintf("Once it runs: curl -i -X %s http://localhost:7071%s (fill in any {parameters}).", strings.ToUpper(s.Methods[0]), path)
}

type templateData struct {
	spec
	Package            string
	Module             string
	Path               string // the HTTP route's URL path
	MethodsUpper       string
	Does               string // what Function does, for its comment
	Binding, Output    string // the trigger's and the HTTP output's binding names
	RegistrationFields string
	TestImports        []string // standard packages only the trigger's test uses
}

func render(name string, data templateData) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, err
	}
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("generated code does not parse (a bug in newfunction): %w", err)
	}
	return out, nil
}
