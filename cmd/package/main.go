// The package command builds the custom handler for Azure (linux/amd64,
// static) and writes the deployment zip the Functions host expects.
//
// The zip holds exactly:
//
//	host.json
//	<function>/function.json   for every folder directly under the root holding one
//	<defaultExecutablePath>    the handler binary, recorded with mode 0755
//
// Nothing else goes in: no Go sources, tests, local.settings.json or
// node_modules. Entries are sorted and carry a fixed timestamp, so the same
// sources give the same bytes.
//
// Usage:
//
//	go run ./cmd/package [-root .] [-out dist/sluice.zip] [-bin path]
//
// azd runs it as the prepackage hook (see azure.yaml); `make package` runs it
// too, so the zip azd deploys is the one you can open and test.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// zipTime is the modification time written for every entry. Zip stores DOS
// times, which start in 1980.
var zipTime = time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC)

// functionName is the host's rule for a function folder name
// (case-insensitive; "host" is reserved).
var functionName = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)

func main() {
	root := flag.String("root", ".", "project root holding host.json and the function folders")
	out := flag.String("out", "dist/sluice.zip", "zip file to write")
	bin := flag.String("bin", "", "where to build the handler binary (default: <root>/<defaultExecutablePath from host.json>)")
	pkg := flag.String("pkg", "./handler", "Go package of the custom handler, relative to -root")
	flag.Parse()

	if err := run(*root, *out, *bin, *pkg); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(root, out, bin, pkg string) error {
	exe, err := executablePath(filepath.Join(root, "host.json"))
	if err != nil {
		return err
	}
	fns, err := functionDirs(root)
	if err != nil {
		return err
	}
	if bin == "" {
		bin = filepath.Join(root, filepath.FromSlash(exe))
	}
	if err := build(root, pkg, bin); err != nil {
		return err
	}

	files := []entry{
		{name: "host.json", src: filepath.Join(root, "host.json"), mode: 0o644},
		{name: exe, src: bin, mode: 0o755},
	}
	for _, fn := range fns {
		files = append(files, entry{
			name: fn + "/function.json",
			src:  filepath.Join(root, fn, "function.json"),
			mode: 0o644,
		})
	}
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return writeZip(out, files)
}

// executablePath returns customHandler.description.defaultExecutablePath from
// host.json, checked to be a Linux path inside the package.
func executablePath(hostJSON string) (string, error) {
	b, err := os.ReadFile(hostJSON)
	if err != nil {
		return "", err
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(b, &host); err != nil {
		return "", fmt.Errorf("parsing %s: %w", hostJSON, err)
	}
	p := host.CustomHandler.Description.DefaultExecutablePath
	switch {
	case p == "":
		return "", fmt.Errorf("%s: customHandler.description.defaultExecutablePath is empty", hostJSON)
	case strings.Contains(p, `\`), path.IsAbs(p), path.Clean(p) != p, p == "..", strings.HasPrefix(p, "../"):
		return "", fmt.Errorf("%s: defaultExecutablePath %q must be a clean relative path inside the package", hostJSON, p)
	case strings.HasSuffix(strings.ToLower(p), ".exe"):
		return "", fmt.Errorf("%s: defaultExecutablePath %q names a Windows binary; this package targets Linux", hostJSON, p)
	}
	return p, nil
}

// functionDirs returns the sorted names of the folders directly under root
// that hold a function.json. The host discovers functions only there.
func functionDirs(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		fi, err := os.Stat(filepath.Join(root, e.Name(), "function.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if !functionName.MatchString(e.Name()) || strings.EqualFold(e.Name(), "host") {
			return nil, fmt.Errorf("folder %q holds a function.json but is not a valid function name", e.Name())
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no function folders (<name>/function.json) under %s", root)
	}
	slices.Sort(names)
	return names, nil
}

// build cross-compiles the handler into a static linux/amd64 binary.
func build(root, pkg, bin string) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", abs, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout = os.Stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for linux/amd64: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

type entry struct {
	name string // slash-separated path in the zip
	src  string
	mode fs.FileMode
}

// writeZip writes the entries to a temporary file beside out and renames it
// into place, so a failed run never leaves a half-written package.
func writeZip(out string, files []entry) (err error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".package-*.zip")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	zw := zip.NewWriter(tmp)
	for _, f := range files {
		if err := addFile(zw, f); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func addFile(zw *zip.Writer, f entry) error {
	src, err := os.Open(f.src)
	if err != nil {
		return err
	}
	defer src.Close()

	h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: zipTime}
	// SetMode records Unix permissions in the external attributes and marks
	// the creator as Unix, which is what makes the host's unzip (and
	// run-from-package mounts) keep the executable bit.
	h.SetMode(f.mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		return fmt.Errorf("adding %s: %w", f.name, err)
	}
	return nil
}
