package deploy_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// The CI workflow shipped for users' repositories runs the test suite on
// every change and deploys only on demand, with federated credentials.
func TestCIWorkflow(t *testing.T) {
	var wf struct {
		On   map[string]any `json:"on"`
		Jobs map[string]struct {
			If          string            `json:"if"`
			Permissions map[string]string `json:"permissions"`
			Steps       []struct {
				Uses string            `json:"uses"`
				Run  string            `json:"run"`
				With map[string]any    `json:"with"`
				Env  map[string]string `json:"env"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	runNode(t, &wf, "yaml", filepath.Join(repoRoot(t), ".github", "workflows", "ci.yml"))

	for _, ev := range []string{"push", "pull_request", "workflow_dispatch"} {
		if _, ok := wf.On[ev]; !ok {
			t.Errorf("workflow does not run on %s", ev)
		}
	}

	test, ok := wf.Jobs["test"]
	if !ok {
		t.Fatal("workflow has no test job")
	}
	var goFromMod, node20, makeTest bool
	for _, s := range test.Steps {
		switch {
		case strings.HasPrefix(s.Uses, "actions/setup-go@"):
			goFromMod = s.With["go-version-file"] == "go.mod"
		case strings.HasPrefix(s.Uses, "actions/setup-node@"):
			node20 = s.With["node-version"] == float64(20) || s.With["node-version"] == "20"
		case strings.TrimSpace(s.Run) == "make test":
			makeTest = true
		}
	}
	if !goFromMod || !node20 || !makeTest {
		t.Errorf("test job: setup-go from go.mod %v, Node 20 %v, make test %v; want all true", goFromMod, node20, makeTest)
	}

	deploy, ok := wf.Jobs["deploy"]
	if !ok {
		t.Fatal("workflow has no deploy job")
	}
	if !strings.Contains(deploy.If, "workflow_dispatch") {
		t.Errorf("deploy job runs when %q; want only on workflow_dispatch", deploy.If)
	}
	if deploy.Permissions["id-token"] != "write" {
		t.Error("deploy job cannot request an OIDC token (permissions.id-token: write)")
	}
	var login, deployed bool
	for _, s := range deploy.Steps {
		login = login || strings.Contains(s.Run, "--federated-credential-provider") || strings.HasPrefix(s.Uses, "azure/login@")
		deployed = deployed || strings.Contains(s.Run, "azd deploy") || strings.Contains(s.Run, "azd up")
	}
	if !login || !deployed {
		t.Errorf("deploy job: federated sign-in %v, azd deploy %v; want both", login, deployed)
	}
}
