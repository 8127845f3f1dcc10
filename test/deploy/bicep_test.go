package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type parseResult struct {
	File     string `json:"file"`
	Problems []struct {
		Kind   string `json:"kind"`
		Row    int    `json:"row"`
		Column int    `json:"column"`
		Text   string `json:"text"`
	} `json:"problems"`
}

func parseBicep(t *testing.T, files ...string) []parseResult {
	t.Helper()
	var res []parseResult
	runNode(t, &res, append([]string{"bicep"}, files...)...)
	if len(res) != len(files) {
		t.Fatalf("parser returned %d results for %d files", len(res), len(files))
	}
	return res
}

func TestBicepParses(t *testing.T) {
	for _, r := range parseBicep(t, bicepFiles(t)...) {
		for _, p := range r.Problems {
			t.Errorf("%s:%d:%d: %s near %q", r.File, p.Row, p.Column, p.Kind, p.Text)
		}
	}
}

// The syntax check must be able to fail.
func TestBicepParserReportsBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		source string
		ok     bool
	}{
		{"valid", "param name string\nresource sa 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: name\n}\noutput id string = sa.id\n", true},
		{"unclosed object", "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  properties: {\n", false},
		{"stray token", "param name string = 'a' 'b'\nvar x = = 1\n", false},
		{"broken decorator", "@description(\nparam p string\n", false},
	}
	var files []string
	for _, c := range cases {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".bicep")
		if err := os.WriteFile(f, []byte(c.source), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for i, r := range parseBicep(t, files...) {
		c := cases[i]
		if got := len(r.Problems) == 0; got != c.ok {
			t.Errorf("%s: parsed cleanly = %v, want %v (problems: %+v)", c.name, got, c.ok, r.Problems)
		}
	}
}

var (
	paramDecl  = regexp.MustCompile(`(?m)^param\s+(\w+)\s+\w+(\s*=)?`)
	outputDecl = regexp.MustCompile(`(?m)^output\s+(\w+)\s`)
)

// main.parameters.json and main.bicep must agree: azd passes every entry,
// and ARM rejects unknown parameters and missing required ones.
func TestParametersFileMatchesMain(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "infra", "bicep", "main.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	main := stripComments(string(b))
	var pf struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	raw, err := os.ReadFile(filepath.Join(root, "infra", "bicep", "main.parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pf); err != nil {
		t.Fatalf("main.parameters.json: %v", err)
	}

	declared := map[string]bool{} // name -> has default
	for _, m := range paramDecl.FindAllStringSubmatch(main, -1) {
		declared[m[1]] = m[2] != ""
	}
	for name := range pf.Parameters {
		if _, ok := declared[name]; !ok {
			t.Errorf("main.parameters.json sets %s, which main.bicep does not declare", name)
		}
	}
	for name, hasDefault := range declared {
		if _, ok := pf.Parameters[name]; !ok && !hasDefault {
			t.Errorf("main.bicep requires %s but main.parameters.json does not set it", name)
		}
	}
	for name, env := range map[string]string{
		"environmentName": "${AZURE_ENV_NAME}",
		"location":        "${AZURE_LOCATION}",
		"principalId":     "${AZURE_PRINCIPAL_ID}",
	} {
		if v := pf.Parameters[name].Value; v != env {
			t.Errorf("parameter %s = %v, want %s", name, v, env)
		}
	}
}

func TestMainOutputsForAzd(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "bicep", "main.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	for _, m := range outputDecl.FindAllStringSubmatch(stripComments(string(b)), -1) {
		outputs = append(outputs, m[1])
	}
	for _, want := range []string{
		"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "RESOURCE_GROUP",
		"AZURE_FUNCTION_NAME", "SERVICE_API_NAME", "COSMOS_ENDPOINT", "COSMOS_DATABASE",
		"COSMOS_CONTAINER", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_BLOB_ENDPOINT",
		"AZURE_STORAGE_QUEUE_ENDPOINT",
	} {
		if !slices.Contains(outputs, want) {
			t.Errorf("main.bicep has no output %s", want)
		}
	}
	for _, o := range outputs {
		if o != strings.ToUpper(o) {
			t.Errorf("output %s: azd environment values are upper case", o)
		}
	}
}

// Module references must resolve: local paths exist, registry modules are
// pinned to an exact version.
func TestModuleReferences(t *testing.T) {
	root := repoRoot(t)
	ref := regexp.MustCompile(`(?m)^module\s+\w+\s+'([^']+)'`)
	pinned := regexp.MustCompile(`^br/public:avm/[a-z0-9\-/]+:\d+\.\d+\.\d+$`)
	for _, src := range loadBicep(t) {
		for _, m := range ref.FindAllStringSubmatch(src.code, -1) {
			target := m[1]
			if strings.HasPrefix(target, "br/") || strings.HasPrefix(target, "br:") {
				if !pinned.MatchString(target) {
					t.Errorf("%s: registry module %s is not an exact AVM version", src.path, target)
				}
				continue
			}
			p := filepath.Join(root, filepath.Dir(filepath.FromSlash(src.path)), filepath.FromSlash(target))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: module %s: %v", src.path, target, err)
			}
		}
	}
}

// Every resource gets the azd-env-name tag (through the tags parameter), and
// only the function app carries azd-service-name.
func TestTags(t *testing.T) {
	resource := regexp.MustCompile(`(?m)^resource\s+(\w+)\s+'([^'@]+)@[^']+'\s+(existing\s+)?=`)
	for _, src := range loadBicep(t) {
		for _, loc := range resource.FindAllStringSubmatchIndex(src.code, -1) {
			name := src.code[loc[2]:loc[3]]
			typ := src.code[loc[4]:loc[5]]
			// Existing resources, child resources and role assignments take no tags.
			if loc[6] >= 0 || strings.Count(typ, "/") > 1 || strings.HasPrefix(typ, "Microsoft.Authorization/") {
				continue
			}
			body := block(src.code[loc[0]:], regexp.MustCompile(`=`))
			if !regexp.MustCompile(`(?m)^\s*tags:\s*(tags|union\(tags,)`).MatchString(body) {
				t.Errorf("%s: resource %s (%s) does not carry the tags parameter", src.path, name, typ)
			}
		}
	}
	var serviceTagged []string
	for _, src := range loadBicep(t) {
		if strings.Contains(src.code, "'azd-service-name': 'api'") {
			serviceTagged = append(serviceTagged, src.path)
		}
	}
	if fmt.Sprint(serviceTagged) != "[infra/bicep/modules/functionapp.bicep]" {
		t.Errorf("azd-service-name: 'api' found in %v, want only the function app module", serviceTagged)
	}
}
