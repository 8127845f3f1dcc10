package security

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/funchost"
	"github.com/sluice-dev/sluice/test/stack"
)

// httpFunction is an HTTP-triggered function as its function.json declares it.
type httpFunction struct {
	name      string
	authLevel string
	route     string
	methods   []string
}

// httpFunctions reads every function.json one level below root, as the host finds them,
// and returns the HTTP-triggered ones.
func httpFunctions(t *testing.T, root string) []httpFunction {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []httpFunction
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Bindings []struct {
				Type      string   `json:"type"`
				AuthLevel *string  `json:"authLevel"`
				Route     *string  `json:"route"`
				Methods   []string `json:"methods"`
			} `json:"bindings"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(filepath.Dir(f))
		for _, b := range doc.Bindings {
			if !strings.EqualFold(b.Type, "httpTrigger") {
				continue
			}
			fn := httpFunction{name: name, route: name, methods: b.Methods}
			if b.AuthLevel != nil {
				fn.authLevel = *b.AuthLevel
			}
			if b.Route != nil {
				fn.route = *b.Route
			}
			out = append(out, fn)
		}
	}
	return out
}

// TestHTTPFunctionsDeclareKeyAuth requires every HTTP function, health included, to say
// authLevel function or admin in its function.json, and anything under an admin/ route
// to say admin. Writing it out keeps the level from changing with a programming model's
// default (the Node v4 model defaults to anonymous).
func TestHTTPFunctionsDeclareKeyAuth(t *testing.T) {
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fns := httpFunctions(t, root)
	if len(fns) == 0 {
		t.Fatal("no HTTP functions found")
	}
	for _, fn := range fns {
		switch level := strings.ToLower(fn.authLevel); {
		case level != "function" && level != "admin":
			t.Errorf("%s: authLevel %q, want function or admin", fn.name, fn.authLevel)
		case strings.HasPrefix(strings.ToLower(strings.Trim(fn.route, "/")), "admin/") && level != "admin":
			t.Errorf("%s: route %q is an admin operation but authLevel is %q", fn.name, fn.route, fn.authLevel)
		}
	}
}

var routeParam = regexp.MustCompile(`\{[^}]*\}`)

// TestKeysAreEnforced runs the host with keys enforced, as Azure does, and calls every
// HTTP function without a key, with a wrong one, with the function key (in the header
// and in ?code=) and with the master key.
func TestKeysAreEnforced(t *testing.T) {
	const functionKey, masterKey = "function-key-for-tests", "master-key-for-tests"
	s := stack.StartT(t, stack.Options{NoFulfilment: true, HostOptions: func(o *funchost.Options) {
		o.EnforceKeys, o.FunctionKey, o.MasterKey = true, functionKey, masterKey
	}})
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path, headerKey, queryKey string) int {
		if queryKey != "" {
			path += "?code=" + queryKey
		}
		req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(`{"items":[{"sku":"apple","quantity":1}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if headerKey != "" {
			req.Header.Set("x-functions-key", headerKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	checked := 0
	for _, fn := range httpFunctions(t, s.Root) {
		path := "/api/" + routeParam.ReplaceAllString(strings.Trim(fn.route, "/"), "key-test")
		methods := fn.methods
		if len(methods) == 0 {
			methods = []string{http.MethodGet}
		}
		admin := strings.EqualFold(fn.authLevel, "admin")
		for _, m := range methods {
			m = strings.ToUpper(m)
			for _, tc := range []struct {
				what          string
				header, query string
				allowed       bool
			}{
				{"no key", "", "", false},
				{"a wrong key", "not-" + functionKey, "", false},
				{"a wrong ?code=", "", "not-" + masterKey, false},
				{"the function key", functionKey, "", !admin},
				{"the function key in ?code=", "", functionKey, !admin},
				{"the master key", masterKey, "", true},
			} {
				got := call(m, path, tc.header, tc.query)
				if tc.allowed == (got == http.StatusUnauthorized) {
					t.Errorf("%s (%s) %s %s with %s: %d", fn.name, fn.authLevel, m, path, tc.what, got)
				}
				checked++
			}
		}
	}
	t.Logf("%d calls to %d HTTP functions with keys enforced: 401 exactly when the key was missing, wrong or below the function's level",
		checked, len(httpFunctions(t, s.Root)))
}
