package deploy_test

import (
	"bytes"
	"encoding/json"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const azdExtensionsBase = "https://raw.githubusercontent.com/Azure/azure-dev/main/cli/azd/extensions/"

// compileSchema compiles a schema file. With forceDraft7 the file's own
// $schema is dropped and Draft 7 used: function.schema.json says draft-04
// but relies on `const`, which draft-04 ignores, and then rejects every
// binding through its oneOf.
func compileSchema(t *testing.T, c *jsonschema.Compiler, file string, forceDraft7 bool) *jsonschema.Schema {
	t.Helper()
	doc := readJSON(t, file)
	if forceDraft7 {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a JSON object", file)
		}
		delete(m, "$schema")
		c.DefaultDraft(jsonschema.Draft7)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	url := (&neturl.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compiling %s: %v", file, err)
	}
	return s
}

func readJSON(t *testing.T, file string) any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func TestHostJSONMatchesSchema(t *testing.T) {
	dir := schemasDir(t)
	s := compileSchema(t, jsonschema.NewCompiler(), filepath.Join(dir, "host.schema.json"), false)
	if err := s.Validate(readJSON(t, filepath.Join(repoRoot(t), "host.json"))); err != nil {
		t.Errorf("host.json: %v", err)
	}
}

func TestFunctionJSONMatchesSchema(t *testing.T) {
	dir := schemasDir(t)
	s := compileSchema(t, jsonschema.NewCompiler(), filepath.Join(dir, "function.schema.json"), true)
	fns := functionFolders(t, repoRoot(t))
	if len(fns) == 0 {
		t.Fatal("no function folders found")
	}
	for _, fn := range fns {
		t.Run(fn, func(t *testing.T) {
			if err := s.Validate(readJSON(t, filepath.Join(repoRoot(t), fn, "function.json"))); err != nil {
				t.Errorf("%s/function.json: %v", fn, err)
			}
		})
	}

	// The schema check must be able to fail: a direction the host does not
	// know is rejected.
	bad, err := jsonschema.UnmarshalJSON(strings.NewReader(
		`{"bindings":[{"type":"queueTrigger","direction":"sideways","name":"msg","queueName":"q"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Validate(bad) == nil {
		t.Error("function schema accepted direction sideways; the validator is not checking")
	}
}

// azureYAMLSchema compiles azure.yaml.schema.json with the azd extension
// schemas registered under the URLs it refers to, so nothing is fetched.
func azureYAMLSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir := schemasDir(t)
	c := jsonschema.NewCompiler()
	c.UseLoader(offlineLoader{})
	exts, err := os.ReadDir(filepath.Join(dir, "azd-extensions"))
	if err != nil {
		t.Fatal(err)
	}
	// Files without their own folder in the URL live beside azure.ai.agent.json.
	folder := map[string]string{
		"azure.ai.agent.json":      "azure.ai.agents",
		"microsoft.foundry.json":   "azure.ai.agents",
		"azure.ai.project.json":    "azure.ai.projects",
		"azure.ai.connection.json": "azure.ai.connections",
		"azure.ai.routine.json":    "azure.ai.routines",
		"azure.ai.skill.json":      "azure.ai.skills",
		"azure.ai.toolbox.json":    "azure.ai.toolboxes",
	}
	for _, e := range exts {
		f := folder[e.Name()]
		if f == "" {
			f = "azure.ai.agents" // Agent.json, FileRef.json and the other sub-schemas
		}
		url := azdExtensionsBase + f + "/schemas/" + e.Name()
		if err := c.AddResource(url, readJSON(t, filepath.Join(dir, "azd-extensions", e.Name()))); err != nil {
			t.Fatalf("registering %s: %v", e.Name(), err)
		}
	}
	return compileSchema(t, c, filepath.Join(dir, "azure.yaml.schema.json"), false)
}

// offlineLoader refuses every fetch, so a missing registration shows up as
// an error naming the URL instead of a network call.
type offlineLoader struct{}

func (offlineLoader) Load(url string) (any, error) {
	return nil, &os.PathError{Op: "load (offline)", Path: url, Err: os.ErrNotExist}
}

func loadAzureYAML(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	runNode(t, &doc, "yaml", filepath.Join(repoRoot(t), "azure.yaml"))
	return doc
}

// toSchemaValue round-trips through the schema library's JSON decoder so
// numbers have the types it expects.
func toSchemaValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAzureYAMLMatchesSchema(t *testing.T) {
	s := azureYAMLSchema(t)
	doc := loadAzureYAML(t)
	if err := s.Validate(toSchemaValue(t, doc)); err != nil {
		t.Errorf("azure.yaml: %v", err)
	}

	// Control: the same file without the service host must fail, which
	// proves the extension references resolved offline and the validator
	// actually checks services.
	broken := toSchemaValue(t, doc).(map[string]any)
	api := broken["services"].(map[string]any)["api"].(map[string]any)
	delete(api, "host")
	if err := s.Validate(broken); err == nil {
		t.Error("azure.yaml schema accepted a service without host")
	}
}

func TestAzureYAMLContract(t *testing.T) {
	doc := loadAzureYAML(t)
	root := repoRoot(t)

	if doc["name"] != "sluice" {
		t.Errorf("name = %v, want sluice", doc["name"])
	}
	infra, _ := doc["infra"].(map[string]any)
	if infra["provider"] != "bicep" || infra["path"] != "infra/bicep" {
		t.Errorf("infra = %v, want provider bicep, path infra/bicep", infra)
	}
	if p, _ := infra["path"].(string); p != "" {
		for _, f := range []string{"main.bicep", "main.parameters.json"} {
			if _, err := os.Stat(filepath.Join(root, p, f)); err != nil {
				t.Errorf("infra.path %s: %v", p, err)
			}
		}
	}

	api, _ := doc["services"].(map[string]any)["api"].(map[string]any)
	want := map[string]string{"project": ".", "host": "function", "language": "custom"}
	for k, v := range want {
		if api[k] != v {
			t.Errorf("services.api.%s = %v, want %s", k, api[k], v)
		}
	}
	// language custom deploys `dist` as is; it must be the zip the
	// prepackage hook writes.
	dist, _ := api["dist"].(string)
	if !strings.HasSuffix(dist, ".zip") {
		t.Errorf("services.api.dist = %q, want the package zip", dist)
	}
	hooks, _ := api["hooks"].(map[string]any)
	pre, _ := hooks["prepackage"].(map[string]any)
	for _, osName := range []string{"posix", "windows"} {
		h, _ := pre[osName].(map[string]any)
		run, _ := h["run"].(string)
		if !strings.Contains(run, "./cmd/package") || !strings.Contains(run, "-out "+dist) {
			t.Errorf("prepackage.%s.run = %q, want it to run ./cmd/package with -out %s", osName, run, dist)
		}
	}
}
