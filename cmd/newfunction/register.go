package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// registrationMarker is the comment in handler/functions.go above which new functions'
// registrations go, last in the list.
const registrationMarker = "// New functions are added above this line."

// register returns handler/functions.go with the function's import and its line in the
// registration list, or an error naming what stops it: a missing marker, the package
// already imported, or a package name that an identifier of the handler would shadow.
func register(file, importPath, pkg, line string) ([]byte, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("handler/functions.go does not parse: %w", err)
	}
	if err := checkNameFree(filepath.Dir(file), f, pkg); err != nil {
		return nil, err
	}
	for _, spec := range f.Imports {
		if p, _ := strconv.Unquote(spec.Path.Value); p == importPath {
			return nil, fmt.Errorf("handler/functions.go already imports %s", importPath)
		}
	}
	var block *ast.GenDecl
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT && g.Lparen.IsValid() {
			block = g
			break
		}
	}
	if block == nil {
		return nil, fmt.Errorf("handler/functions.go has no import ( ... ) block")
	}

	if n := bytes.Count(src, []byte(registrationMarker)); n != 1 {
		return nil, fmt.Errorf("handler/functions.go must hold the line %q exactly once, last in the registrations list (found %d); add it back, or add the registration by hand", registrationMarker, n)
	}
	at := bytes.Index(src, []byte(registrationMarker))
	lineStart := bytes.LastIndexByte(src[:at], '\n') + 1
	indent := src[lineStart:at]
	if len(bytes.TrimSpace(indent)) != 0 {
		return nil, fmt.Errorf("the marker %q in handler/functions.go must be on a line of its own", registrationMarker)
	}
	importAt := fset.Position(block.Rparen).Offset

	// The import goes before the marker in the file, so inserting it second keeps the
	// marker's offset valid.
	var out bytes.Buffer
	out.Write(src[:importAt])
	fmt.Fprintf(&out, "\t%q\n", importPath)
	out.Write(src[importAt:lineStart])
	fmt.Fprintf(&out, "%s%s\n", indent, line)
	out.Write(src[lineStart:])
	formatted, err := format.Source(out.Bytes()) // also sorts the new import into place
	if err != nil {
		return nil, fmt.Errorf("handler/functions.go would not parse after the edit (is the marker inside the registrations list?): %w", err)
	}
	return formatted, nil
}

// handlerModule returns the module path the handler imports internal/invocation from,
// which is the path the new package's imports use.
func handlerModule(file string) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		return "", fmt.Errorf("%w: run this from the repository root, or pass -root", err)
	}
	for _, spec := range f.Imports {
		p, _ := strconv.Unquote(spec.Path.Value)
		if module, ok := strings.CutSuffix(p, "/internal/invocation"); ok {
			return module, nil
		}
	}
	return "", errors.New("handler/functions.go does not import internal/invocation; the module path cannot be told")
}

// checkNameFree refuses a package name that would collide, in the handler, with an
// import, a package-level name, or any identifier of functions.go (a local variable of
// that name would hide the package at the registration line).
func checkNameFree(dir string, f *ast.File, pkg string) error {
	clash := func(what string) error {
		return fmt.Errorf("the Go package %q would clash with %s; choose another function name", pkg, what)
	}
	for _, spec := range f.Imports {
		p, _ := strconv.Unquote(spec.Path.Value)
		local := p[strings.LastIndexByte(p, '/')+1:]
		if spec.Name != nil {
			local = spec.Name.Name
		}
		if local == pkg {
			return clash("the import of " + p + " in handler/functions.go")
		}
	}
	var found bool
	ast.Inspect(f, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == pkg {
			found = true
		}
		return !found
	})
	if found {
		return clash("the identifier " + pkg + " in handler/functions.go")
	}
	// Package-level names of the handler's other files share the import's scope.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		other, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing handler/%s: %w", e.Name(), err)
		}
		if slices.Contains(topLevelNames(other), pkg) {
			return clash("a declaration in handler/" + e.Name())
		}
	}
	return nil
}

// topLevelNames lists the package-level names a file declares.
func topLevelNames(f *ast.File) []string {
	var names []string
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				names = append(names, d.Name.Name)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					names = append(names, s.Name.Name)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	return names
}
