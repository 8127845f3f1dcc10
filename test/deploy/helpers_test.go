// Package deploy_test checks what `azd up` ships without deploying it: the
// Functions configuration files against their published schemas, the Bicep
// syntax and security properties, azure.yaml, and the deployment zip built by
// cmd/package.
//
// What these tests cannot prove (Azure accepting the templates, role
// propagation, the host starting the binary) is listed in the README's
// deploy section with the commands that check it.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/test/stack"
)

// repoRoot is the repository root, where npm installs node_modules.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// schemasDir returns ../shared/schemas next to the repository, skipping the
// test when it is absent (a user's own clone has no such folder).
func schemasDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "..", "shared", "schemas")
	if _, err := os.Stat(filepath.Join(dir, "azure.yaml.schema.json")); err != nil {
		t.Skipf("schema snapshot not found at %s (it sits beside the repository in the template's own CI); skipping schema validation", dir)
	}
	return dir
}

// nodeModules finds the node_modules holding the Bicep parser by walking up
// from the repository root. The tests fail without it: `npm ci` installs it.
func nodeModules(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH; the Bicep syntax check needs Node.js 20 or later")
	}
	dir := repoRoot(t)
	for {
		nm := filepath.Join(dir, "node_modules")
		if _, err := os.Stat(filepath.Join(nm, "tree-sitter-bicep")); err == nil {
			return nm
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("node_modules/tree-sitter-bicep not found above the repository; run `npm ci` at the repository root")
		}
		dir = parent
	}
}

// runNode runs parse.cjs with the given arguments and decodes its JSON output.
func runNode(t *testing.T, out any, args ...string) {
	t.Helper()
	nm := nodeModules(t)
	script, err := filepath.Abs("parse.cjs")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nm)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node parse.cjs %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("decoding parse.cjs output: %v\n%s", err, stdout)
	}
}

// bicepFiles lists every .bicep file under infra/.
func bicepFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(repoRoot(t), "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".bicep") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .bicep files under infra/")
	}
	slices.Sort(files)
	return files
}

// bicepSource is one Bicep file with its comments removed, so assertions on
// the text cannot be satisfied (or broken) by prose.
type bicepSource struct {
	path string // relative to the repository root
	code string
}

func loadBicep(t *testing.T) []bicepSource {
	t.Helper()
	root := repoRoot(t)
	var srcs []bicepSource
	for _, f := range bicepFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		srcs = append(srcs, bicepSource{path: filepath.ToSlash(rel), code: stripComments(string(b))})
	}
	return srcs
}

// stripComments removes // and /* */ comments outside Bicep strings
// (single-quoted with backslash escapes, and triple-quoted multi-line
// strings), keeping line breaks so positions stay meaningful.
func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "'''"):
			end := strings.Index(s[i+3:], "'''")
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(s[i : i+3+end+3])
			i += 3 + end + 3
		case s[i] == '\'':
			j := i + 1
			for j < len(s) && s[j] != '\'' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(s))
			b.WriteString(s[i:j])
			i = j
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			b.WriteString(strings.Repeat("\n", strings.Count(s[i:i+2+end+2], "\n")))
			i += 2 + end + 2
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// block returns the text between the braces that follow the first match of
// re (for example `var consumptionOnlySettings = {`), or "" when absent.
func block(code string, re *regexp.Regexp) string {
	loc := re.FindStringIndex(code)
	if loc == nil {
		return ""
	}
	open := strings.IndexByte(code[loc[0]:], '{')
	if open < 0 {
		return ""
	}
	start := loc[0] + open
	depth := 0
	inString := false
	for i := start; i < len(code); i++ {
		c := code[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return code[start+1 : i]
			}
		}
	}
	return ""
}

// objectKeys returns the top-level property names of a Bicep object body.
func objectKeys(body string) []string {
	var keys []string
	depth := 0
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if depth == 0 {
			if m := regexp.MustCompile(`^'?([A-Za-z_][A-Za-z0-9_\-]*)'?\s*:`).FindStringSubmatch(trimmed); m != nil {
				keys = append(keys, m[1])
			}
		}
		depth += strings.Count(trimmed, "{") + strings.Count(trimmed, "[") -
			strings.Count(trimmed, "}") - strings.Count(trimmed, "]")
	}
	return keys
}
