package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRewrite(t *testing.T) {
	const oldModule = "example.com/tpl/sluicy"
	rw := newRewriter(oldModule, "github.com/acme/my-shop", "sluicy", "my-shop", "My Shop")
	for _, c := range []struct{ in, want string }{
		{`import "example.com/tpl/sluicy/internal/order"`, `import "github.com/acme/my-shop/internal/order"`},
		{"module example.com/tpl/sluicy\n", "module github.com/acme/my-shop\n"},
		{"see example.com/tpl/sluicy.", "see github.com/acme/my-shop."},
		{"example.com/tpl/sluicyx/a", "example.com/tpl/sluicyx/a"}, // another module
		{"name: sluicy", "name: my-shop"},
		{"dist/sluicy.zip", "dist/my-shop.zip"},
		{"urn:sluicy:problem:x", "urn:my-shop:problem:x"},
		{"sluicy-local-stand-ins", "my-shop-local-stand-ins"},
		{"${SLUICY_HOSTING_PLAN=consumption}", "${MY_SHOP_HOSTING_PLAN=consumption}"},
		{"# Sluicy: the commands", "# My Shop: the commands"},
		{`"\nSluicy is serving"`, `"\nMy Shop is serving"`},
		{"v := sluicyVariant(root)", "v := myShopVariant(root)"},
		{"func newSluicy() *SluicyServer", "func newMyShop() *MyShopServer"},
		{"sluicygate and unsluicy stay", "sluicygate and unsluicy stay"},
		{"from the Sluicy template", "from the Sluicy template"},
		{"SlUiCy", "SlUiCy"}, // reported, not guessed
	} {
		got, _ := rw.rewrite("x.md", []byte(c.in))
		if string(got) != c.want {
			t.Errorf("rewrite(%q) = %q, want %q", c.in, got, c.want)
		}
	}

	yaml := "name: sluicy\nmetadata:\n  template: sluicy@0.1.0\n"
	got, res := rw.rewrite("azure.yaml", []byte(yaml))
	if want := "name: my-shop\nmetadata:\n  template: sluicy@0.1.0\n"; string(got) != want || len(res.kept) != 1 {
		t.Errorf("azure.yaml became %q (kept %v), want %q with the template line kept", got, res.kept, want)
	}
	if _, res := rw.rewrite("x.md", []byte("SlUiCy")); len(res.unmatched) != 1 {
		t.Errorf("an unexpected case was not reported: %+v", res)
	}

	// In Go identifiers, a hyphenated name is written camel-case.
	src := "func drain(sluicy *result) { r.Sluicy = sluicy.Figure } // sluicy's figure\n"
	want := "func drain(myShop *result) { r.MyShop = myShop.Figure } // my-shop's figure\n"
	if got, _ := rw.rewrite("report.go", []byte(src)); string(got) != want {
		t.Errorf("rewrite(%q) = %q, want %q", src, got, want)
	}

	// The name as the old spelling of a hyphenated name, renamed again.
	rw = newRewriter("github.com/acme/my-shop", "github.com/acme/store", "my-shop", "store", "")
	for _, c := range []struct{ in, want string }{
		{"MY_SHOP_HOSTING_PLAN and my-shop.zip", "STORE_HOSTING_PLAN and store.zip"},
		{"myShopVariant, newMyShop(), My-shop", "storeVariant, newStore(), Store"},
	} {
		if got, _ := rw.rewrite("x.md", []byte(c.in)); string(got) != c.want {
			t.Errorf("rewrite(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRefusesBadFlags(t *testing.T) {
	for _, o := range []options{
		{Module: "", Name: "shop"},
		{Module: "github.com/acme/shop", Name: ""},
		{Module: "github.com//shop", Name: "shop"},
		{Module: "github.com/acme/.shop", Name: "shop"},
		{Module: "github.com/acme/shop", Name: "Shop"},
		{Module: "github.com/acme/shop", Name: "my_shop"},
		{Module: "github.com/acme/shop", Name: "shop-"},
		{Module: "github.com/acme/shop", Name: "s"},
		{Module: "github.com/acme/shop", Name: "shop", Title: `Shop "Co"`},
	} {
		o.Root = t.TempDir()
		if _, err := rename(o); err == nil {
			t.Errorf("%+v was accepted", o)
		}
	}
}

// copyRepo copies the repository's sources into <tmp>/repo, as a new clone would hold
// them, with node_modules linked rather than copied. When the schema snapshot sits
// beside the repository it is linked beside the copy too, so the deploy checks validate
// the renamed files against it.
func copyRepo(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	dst := filepath.Join(base, "repo")
	err = walkSources(src, func(rel string, info fs.FileInfo) error {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		filepath.Join(dst, "node_modules"): filepath.Join(src, "node_modules"),
		filepath.Join(base, "shared"):      filepath.Join(src, "..", "shared"),
	} {
		if _, err := os.Stat(target); err == nil {
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// contents maps every source file under root to its content.
func contents(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := walkSources(root, func(rel string, _ fs.FileInfo) error {
		b, err := os.ReadFile(filepath.Join(root, rel))
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRenamedTreeBuildsAndPasses renames a copy of the repository and then builds, vets
// and tests it: the unit tests and the deploy checks, which read azure.yaml, the Bicep
// files and the settings the rename rewrote.
func TestRenamedTreeBuildsAndPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the repository")
	}
	root := copyRepo(t)
	oldModule, err := currentModule(root)
	if err != nil {
		t.Fatal(err)
	}
	oldName, err := currentName(root)
	if err != nil {
		t.Fatal(err)
	}
	before := contents(t, root)
	pkg := filepath.Join(root, "package.json")
	pkgInfo, err := os.Stat(pkg)
	if err != nil {
		t.Fatal(err)
	}
	// Older than anything make compares it with, as in a clone installed long ago.
	pkgTime := pkgInfo.ModTime().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(pkg, time.Time{}, pkgTime); err != nil {
		t.Fatal(err)
	}

	// A hyphenated name (written camel-case in Go identifiers) that does not hold the
	// current name as a word, so what is left of that can be searched for.
	newName := "renamed-" + strings.ReplaceAll(oldName, "-", "") + "x"
	o := options{Root: root, Module: "example.com/acme/" + newName, Name: newName, DryRun: true}
	dry, err := rename(o)
	if err != nil {
		t.Fatal(err)
	}
	if after := contents(t, root); len(dry.Files) == 0 || !sameContents(before, after) {
		t.Fatalf("dry run listed %d files and changed the tree: %v", len(dry.Files), !sameContents(before, after))
	}

	o.DryRun = false
	rep, err := rename(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != len(dry.Files) {
		t.Errorf("the dry run listed %d files, the run changed %d", len(dry.Files), len(rep.Files))
	}
	if m, _ := currentModule(root); m != o.Module {
		t.Errorf("go.mod module = %q, want %q", m, o.Module)
	}
	if n, _ := currentName(root); n != o.Name {
		t.Errorf("azure.yaml name = %q, want %q", n, o.Name)
	}
	// package.json names the app but is no install input: make must not reinstall.
	if b, err := os.ReadFile(pkg); err != nil || !strings.Contains(string(b), newName) {
		t.Errorf("package.json does not name %s", newName)
	}
	if fi, err := os.Stat(pkg); err != nil || !fi.ModTime().Equal(pkgTime) {
		t.Errorf("package.json modification time changed to %v, want %v kept", fi.ModTime(), pkgTime)
	}
	rw := newRewriter(oldModule, o.Module, oldName, o.Name, "")
	for rel, text := range contents(t, root) {
		if strings.HasPrefix(filepath.ToSlash(rel), ownDir+"/") {
			continue // left alone on purpose
		}
		if strings.Contains(text, oldModule) {
			t.Errorf("%s still holds %s", rel, oldModule)
		}
		// What is left of the old name must be only what rename keeps on purpose.
		if _, res := rw.rewrite(filepath.ToSlash(rel), []byte(text)); res.Name+len(res.unmatched) != 0 {
			t.Errorf("%s still names %s (%d times, %v)", rel, oldName, res.Name, res.unmatched)
		}
	}

	run(t, root, "go", "build", "./...")
	run(t, root, "go", "vet", "./...")
	run(t, root, "go", "test", "-count=1", "-short", "./internal/...", "./functions/...", "./test/deploy/")

	// A second run with the same flags finds nothing to do.
	renamed := contents(t, root)
	again, err := rename(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Files) != 0 || !sameContents(renamed, contents(t, root)) {
		t.Errorf("a second run changed %d files", len(again.Files))
	}
	var out bytes.Buffer
	again.print(&out, false)
	if !strings.Contains(out.String(), "nothing to change") {
		t.Errorf("second run printed %q, want it to say there is nothing to change", out.String())
	}
}

func sameContents(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
