package security

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/test/cosmosstandin"
	"github.com/sluice-dev/sluice/test/stack"
)

// A real account's endpoint, for construction only: 192.0.2.0/24 is reserved for
// documentation (RFC 5737), and nothing here sends it a request.
const remoteEndpoint = "https://192.0.2.10:443/"

func settings(extra map[string]string) config.Getenv {
	m := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": "7999",
		"AzureWebJobsStorage":          "UseDevelopmentStorage=true",
		"COSMOS_DATABASE":              "sluice",
		"COSMOS_CONTAINER":             "orders",
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestEmulatorKeyOnlyForLoopback: the account key is accepted only with a loopback
// endpoint (the emulator or the stand-in); with any other endpoint the handler refuses
// to start and names the setting, so in Azure the managed identity is the only
// credential.
func TestEmulatorKeyOnlyForLoopback(t *testing.T) {
	for _, tc := range []struct {
		endpoint, key string
		refused       string // the setting the error must name; "" when accepted
	}{
		{"https://127.0.0.1:8081/", cosmosstandin.EmulatorKey, ""},
		{"https://localhost:8081/", cosmosstandin.EmulatorKey, ""},
		{"https://[::1]:8081/", cosmosstandin.EmulatorKey, ""},
		{"http://127.0.0.1:8081/", cosmosstandin.EmulatorKey, ""},
		{remoteEndpoint, "", ""},
		{"https://sluice.documents.azure.com:443/", "", ""},
		{remoteEndpoint, cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		{"https://sluice.documents.azure.com:443/", cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		// Names that only look local.
		{"https://localhost.sluice.example:8081/", cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		{"https://127.0.0.1.nip.io:8081/", cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		{"https://0x7f000001:8081/", cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		{"https://user@127.0.0.1.sluice.example/", cosmosstandin.EmulatorKey, "COSMOS_KEY"},
		// Plain HTTP is for the emulator only, key or no key.
		{"http://sluice.documents.azure.com/", "", "COSMOS_ENDPOINT"},
	} {
		cfg, err := config.Load(settings(map[string]string{"COSMOS_ENDPOINT": tc.endpoint, "COSMOS_KEY": tc.key}))
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s with key %v: refused: %v", tc.endpoint, tc.key != "", err)
		case tc.refused != "" && err == nil:
			t.Errorf("%s with key %v: accepted, want %s refused", tc.endpoint, tc.key != "", tc.refused)
		case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
			t.Errorf("%s: error %q does not name %s", tc.endpoint, err, tc.refused)
		case tc.key != "" && err != nil && strings.Contains(err.Error(), tc.key):
			t.Errorf("%s: the error quotes the key", tc.endpoint)
		case err == nil:
			// Construction only: New dials nothing.
			if _, err := cosmosstore.New(cfg.Cosmos, slog.New(slog.DiscardHandler)); err != nil {
				t.Errorf("%s: building the store client: %v", tc.endpoint, err)
			}
		}
	}
}

// TestHandlerRefusesKeyForRemoteAccount starts the real handler binary with the
// emulator key and a non-loopback endpoint: it must exit at once with an error naming
// COSMOS_KEY, before it opens its port, and without quoting the key.
func TestHandlerRefusesKeyForRemoteAccount(t *testing.T) {
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.BuildHandler(root); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(filepath.Join(root, "bin", "handler"))
	cmd.Dir = root
	cmd.Env = []string{
		"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port),
		"FUNCTIONS_APP_ROOT_PATH=" + root,
		"AzureWebJobsStorage=UseDevelopmentStorage=true",
		"COSMOS_ENDPOINT=" + remoteEndpoint,
		"COSMOS_KEY=" + cosmosstandin.EmulatorKey,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the handler kept running with a key for %s; output:\n%s", remoteEndpoint, out.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("the handler exited with %v, want a failure; output:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "COSMOS_KEY") {
		t.Errorf("the error does not name COSMOS_KEY:\n%s", out.String())
	}
	if strings.Contains(out.String(), cosmosstandin.EmulatorKey) {
		t.Errorf("the error quotes the key:\n%s", out.String())
	}
	t.Logf("handler with a key for %s: exit code %d, %q", remoteEndpoint, exit.ExitCode(), strings.TrimSpace(out.String()))
}
