// Command rename turns the template into your app: it rewrites the Go module path (go.mod
// and every import) and the app name wherever it appears — azure.yaml, the Bicep
// parameters and defaults, package.json, settings, the CI workflow, docs and tests —
// keeping each occurrence's case: name, Name and NAME (in environment variable names,
// with - written _).
//
// Usage:
//
//	go run ./cmd/rename -module github.com/acme/shop -name shop [-title Shop] [-dry-run]
//
// The current module path is read from go.mod and the current name from azure.yaml, so a
// second run with the same flags changes nothing, and a later run can rename again.
// azure.yaml's metadata.template is left alone: it names the template the app came from.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.Module, "module", "", "new Go module path, e.g. github.com/acme/shop")
	flag.StringVar(&o.Name, "name", "", "new app name: lower-case letters, digits and hyphens, e.g. shop")
	flag.StringVar(&o.Title, "title", "", "the name as written in prose (default: the name with a capital first letter)")
	flag.BoolVar(&o.DryRun, "dry-run", false, "list what would change and write nothing")
	flag.StringVar(&o.Root, "root", ".", "repository root, holding go.mod")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q; every option is a flag (see -h)", flag.Args()))
	}
	rep, err := rename(o)
	if err != nil {
		fail(err)
	}
	rep.print(os.Stdout, o.DryRun)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rename:", err)
	os.Exit(1)
}
