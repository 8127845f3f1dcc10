package deploy_test

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// functionFolders lists the folders directly under root that hold a
// function.json, independently of cmd/package.
func functionFolders(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, e.Name(), "function.json")); err == nil && fi.Mode().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

func defaultExecutablePath(t *testing.T, hostJSON []byte) string {
	t.Helper()
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		t.Fatalf("host.json: %v", err)
	}
	return host.CustomHandler.Description.DefaultExecutablePath
}

// buildPackage runs cmd/package against the repository with its outputs in
// a temporary directory and returns the zip path.
func buildPackage(t *testing.T, dir string) string {
	t.Helper()
	root := repoRoot(t)
	if fi, err := os.Stat(filepath.Join(root, "handler")); err != nil || !fi.IsDir() {
		t.Fatalf("the custom handler package ./handler does not exist in %s; the deployment package cannot be built without it", root)
	}
	out := filepath.Join(dir, "sluice.zip")
	cmd := exec.Command("go", "run", "./cmd/package",
		"-root", root, "-out", out, "-bin", filepath.Join(dir, "bin", "handler"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./cmd/package: %v\n%s", err, b)
	}
	return out
}

func TestDeploymentPackage(t *testing.T) {
	root := repoRoot(t)
	zipPath := buildPackage(t, t.TempDir())

	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()

	hostJSON, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	exe := defaultExecutablePath(t, hostJSON)
	if exe == "" || strings.HasSuffix(strings.ToLower(exe), ".exe") || path.IsAbs(exe) {
		t.Fatalf("host.json defaultExecutablePath = %q, want a relative Linux path without .exe", exe)
	}

	// Exactly the expected entries, in sorted order.
	want := []string{"host.json", exe}
	fns := functionFolders(t, root)
	if len(fns) == 0 {
		t.Fatal("no function folders in the repository")
	}
	for _, fn := range fns {
		want = append(want, fn+"/function.json")
	}
	slices.Sort(want)
	var got []string
	for _, f := range zr.File {
		got = append(got, f.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("zip entries:\n got  %v\n want %v", got, want)
	}

	for _, f := range zr.File {
		name := f.Name
		switch {
		case strings.HasSuffix(name, ".go"), strings.Contains(name, "_test"),
			path.Base(name) == "local.settings.json", strings.Contains(name, "node_modules"):
			t.Errorf("zip holds %s, which must not be deployed", name)
		}
		if strings.HasSuffix(name, "/function.json") && strings.Count(name, "/") != 1 {
			t.Errorf("%s is not one level below host.json; the host would not find it", name)
		}
		if !f.Modified.Equal(zr.File[0].Modified) {
			t.Errorf("%s: timestamp %v differs from the others; the package is not reproducible", name, f.Modified)
		}
		// Config files are copied byte for byte.
		if name != exe {
			src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
			if err != nil {
				t.Errorf("%s: no source file: %v", name, err)
				continue
			}
			if b := readEntry(t, f); !bytes.Equal(b, src) {
				t.Errorf("%s differs from the source file", name)
			}
		}
	}

	bin := findEntry(zr, exe)
	if bin == nil {
		t.Fatalf("zip has no %s (host.json's defaultExecutablePath)", exe)
	}
	if creator := bin.CreatorVersion >> 8; creator != 3 {
		t.Errorf("%s: creator OS %d, want 3 (Unix), or the mode is ignored on extraction", exe, creator)
	}
	if mode := bin.Mode(); mode.Perm() != 0o755 || !mode.IsRegular() {
		t.Errorf("%s: mode %v, want -rwxr-xr-x", exe, mode)
	}
	checkStaticLinuxAMD64(t, readEntry(t, bin))
}

// Two runs over the same sources give the same bytes.
func TestDeploymentPackageIsReproducible(t *testing.T) {
	a, err := os.ReadFile(buildPackage(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(buildPackage(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two package builds differ")
	}
}

func findEntry(zr *zip.ReadCloser, name string) *zip.File {
	for _, f := range zr.File {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func readEntry(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkStaticLinuxAMD64 fails unless b is an x86-64 Linux ELF executable
// with no dynamic loader and no shared-library dependencies.
func checkStaticLinuxAMD64(t *testing.T, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("handler binary is not ELF: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Errorf("handler binary is %v/%v, want ELFCLASS64/EM_X86_64", f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		t.Errorf("handler binary type %v, want an executable", f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("handler binary OS ABI %v, want Linux (SYSV)", f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("handler binary has PT_INTERP: it needs a dynamic loader (build with CGO_ENABLED=0)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Errorf("reading DT_NEEDED: %v", err)
	}
	if len(libs) > 0 {
		t.Errorf("handler binary needs shared libraries %v", libs)
	}
}
