// Command newfunction adds a function to the app: its folder with function.json at the
// repository root (where the Functions host discovers it), its Go package under
// functions/ with a test, and its registration in handler/functions.go, one line above
// the marker comment there.
//
// Usage:
//
//	go run ./cmd/newfunction -name audit -trigger queue [-queue audit-events]
//	go run ./cmd/newfunction -name greet -trigger http [-route greet/{who}] [-methods get,post] [-auth function]
//
// It refuses to overwrite anything: a function folder or a Go package of the same name
// stops it before it writes a file, and a failure half-way removes what it wrote.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	var s spec
	flag.StringVar(&s.Name, "name", "", "function name: the folder the host discovers (letters, digits, - and _; starts with a letter)")
	flag.StringVar(&s.Trigger, "trigger", "", "queue or http")
	flag.StringVar(&s.Queue, "queue", "", "queue the function reads (queue trigger; default: the function name)")
	flag.StringVar(&s.Route, "route", "", "route under /api (http trigger; default: the function name)")
	methods := flag.String("methods", "get", "comma-separated HTTP methods (http trigger)")
	flag.StringVar(&s.Auth, "auth", "function", "authLevel of the HTTP trigger: anonymous, function or admin")
	root := flag.String("root", ".", "repository root, holding go.mod")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q; every option is a flag (see -h)", flag.Args()))
	}
	s.Methods = splitList(*methods)

	res, err := generate(*root, s)
	if err != nil {
		fail(err)
	}
	for _, f := range res.Created {
		fmt.Println("created   ", f)
	}
	fmt.Printf("registered %s in handler/functions.go: %s\n", res.Package, res.Registration)
	for _, w := range res.Warnings {
		fmt.Println("warning:  ", w)
	}
	fmt.Println()
	fmt.Printf("Next: go test ./functions/%s && make run\n", res.Package)
	fmt.Println(res.TryIt)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "newfunction:", err)
	os.Exit(1)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
