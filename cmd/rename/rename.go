package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// options is what the user asked for.
type options struct {
	Root   string
	Module string
	Name   string
	Title  string
	DryRun bool
}

// report is what rename changed, or would change.
type report struct {
	OldModule, NewModule string
	OldName, NewName     string
	Files                []fileChange
	Kept                 []string // occurrences deliberately left, and why
	Unmatched            []string // occurrences in an unexpected case, left for the user
}

type fileChange struct {
	Path                   string // slash-separated, relative to the root
	Module, Name, Reformat int
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	// A module path: slash-separated elements of letters, digits and ._~- , none
	// starting with a dot or a hyphen.
	moduleElemRE = regexp.MustCompile(`^[A-Za-z0-9_~][A-Za-z0-9._~-]*$`)
)

// skipDirs are folders that hold no source: version control, dependencies, build output.
var skipDirs = []string{".git", "node_modules", "bin", "dist", "bench-results", ".azure"}

// ownDir is this command's folder. Its examples and tests use names of their own, which
// a later rename to one of those names must not rewrite.
const ownDir = "cmd/rename"

// maxFileBytes bounds the files rewritten; anything larger is data, not source.
const maxFileBytes = 8 << 20

func (o *options) check() error {
	if o.Module == "" || o.Name == "" {
		return errors.New("-module and -name are both required, e.g. -module github.com/acme/shop -name shop")
	}
	for _, e := range strings.Split(o.Module, "/") {
		if !moduleElemRE.MatchString(e) || strings.HasSuffix(e, ".") {
			return fmt.Errorf("-module %q is not a Go module path (e.g. github.com/acme/shop)", o.Module)
		}
	}
	if len(o.Name) < 2 || len(o.Name) > 40 || !nameRE.MatchString(o.Name) {
		return fmt.Errorf("-name %q: use 2 to 40 lower-case letters, digits and single hyphens, starting with a letter (azure.yaml and Azure resource names require it)", o.Name)
	}
	if o.Title == "" {
		o.Title = strings.ToUpper(o.Name[:1]) + o.Name[1:]
	}
	if strings.ContainsAny(o.Title, "\n\r\"'`\\") {
		return fmt.Errorf("-title %q: quotes, backslashes and line breaks would break the files it is written into", o.Title)
	}
	return nil
}

// rename rewrites the tree under o.Root, or with DryRun only reports what it would do.
func rename(o options) (*report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	oldModule, err := currentModule(o.Root)
	if err != nil {
		return nil, err
	}
	oldName, err := currentName(o.Root)
	if err != nil {
		return nil, err
	}
	r := &report{OldModule: oldModule, NewModule: o.Module, OldName: oldName, NewName: o.Name}
	rw := newRewriter(oldModule, o.Module, oldName, o.Name, o.Title)

	type pending struct {
		rel     string // slash-separated
		path    string
		body    []byte
		mode    fs.FileMode
		modTime time.Time
	}
	var writes []pending
	err = walkSources(o.Root, func(rel string, info fs.FileInfo) error {
		if info.Size() > maxFileBytes {
			return nil
		}
		path := filepath.Join(o.Root, rel)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 { // binary
			return nil
		}
		slashRel := filepath.ToSlash(rel)
		if strings.HasPrefix(slashRel, ownDir+"/") {
			return nil
		}
		out, fc := rw.rewrite(slashRel, b)
		for _, u := range fc.unmatched {
			r.Unmatched = append(r.Unmatched, slashRel+": "+u)
		}
		r.Kept = append(r.Kept, fc.kept...)
		if fc.Module+fc.Name == 0 {
			return nil
		}
		if strings.HasSuffix(rel, ".go") && fc.Module > 0 {
			// A new module path can sort differently among the imports.
			if formatted, err := format.Source(out); err == nil && !bytes.Equal(formatted, out) {
				out = formatted
				fc.Reformat = 1
			}
		}
		fc.Path = slashRel
		r.Files = append(r.Files, fc.fileChange)
		writes = append(writes, pending{slashRel, path, out, info.Mode().Perm(), info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return r, nil
	}
	for _, w := range writes {
		if err := writeFile(w.path, w.body, w.mode); err != nil {
			return r, fmt.Errorf("%w (files listed before it were already rewritten; run rename again with the same flags to finish)", err)
		}
		if slices.Contains(keepTime, w.rel) {
			// The package's name is no input to the install: without this, make would
			// see package.json newer than node_modules and run npm ci again.
			if err := os.Chtimes(w.path, time.Time{}, w.modTime); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// keepTime are the files whose modification time rename keeps.
var keepTime = []string{"package.json", "package-lock.json"}

// writeFile replaces path through a temporary file and a rename, so an interrupted run
// never leaves a half-written file.
func writeFile(path string, body []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rename-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// walkSources calls fn for every regular file under root outside skipDirs, in lexical
// order; symbolic links are not followed.
func walkSources(root string, fn func(rel string, info fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && slices.Contains(skipDirs, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return fn(rel, info)
	})
}

// currentModule reads the module path from go.mod.
func currentModule(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%w: run this from the repository root, or pass -root", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.New("go.mod has no module line")
}

// currentName reads the app name from azure.yaml's top-level name.
func currentName(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "azure.yaml"))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "name:"); ok {
			name := strings.Trim(strings.TrimSpace(rest), `"'`)
			if !nameRE.MatchString(name) {
				return "", fmt.Errorf("azure.yaml: name %q is not a plain app name; fix it by hand first", name)
			}
			return name, nil
		}
	}
	return "", errors.New("azure.yaml has no top-level name")
}

func (r *report) print(w io.Writer, dryRun bool) {
	verb := "changed"
	if dryRun {
		verb = "would change"
	}
	if len(r.Files) == 0 {
		fmt.Fprintf(w, "nothing to change: the module is %s and the app is named %s\n", r.OldModule, r.OldName)
	}
	for _, f := range r.Files {
		var parts []string
		if f.Module > 0 {
			parts = append(parts, fmt.Sprintf("module path ×%d", f.Module))
		}
		if f.Name > 0 {
			parts = append(parts, fmt.Sprintf("name ×%d", f.Name))
		}
		if f.Reformat > 0 {
			parts = append(parts, "gofmt")
		}
		fmt.Fprintf(w, "%s %s: %s\n", verb, f.Path, strings.Join(parts, ", "))
	}
	for _, k := range r.Kept {
		fmt.Fprintln(w, "kept", k)
	}
	for _, u := range r.Unmatched {
		fmt.Fprintln(w, "left as it is (unexpected case, check it):", u)
	}
	if len(r.Files) > 0 {
		fmt.Fprintf(w, "\n%s %d files: module %s → %s, name %s → %s\n", verb, len(r.Files), r.OldModule, r.NewModule, r.OldName, r.NewName)
		if !dryRun {
			fmt.Fprintln(w, "Next: go build ./... && go vet ./... && make test-short")
		}
	}
}
