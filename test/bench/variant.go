package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// variant is one configuration a scenario runs: a script root (host.json, function
// folders and the handler it names) and the app settings over the stack's own.
type variant struct {
	Name       string
	ScriptRoot string // "" is the repository root
	Settings   map[string]string
}

const (
	sluiceName   = "sluice"
	baselineName = "baseline"
)

// stackOwned are the sample settings the stack sets itself (endpoints, keys and
// connection strings), and the fulfilment API, which the benchmark leaves out so that
// the machine's cores go to the path being measured.
var stackOwned = []string{"AzureWebJobsStorage", "COSMOS_ENDPOINT", "COSMOS_KEY", "FULFILMENT_API_URL"}

// sluiceVariant is the real handler under the repository's host.json with the settings
// a user starts from: local.settings.sample.json, tuned in nothing.
func sluiceVariant(root string) (variant, error) {
	settings, err := sampleSettings(root)
	if err != nil {
		return variant{}, err
	}
	return variant{Name: sluiceName, Settings: settings}, nil
}

// sampleSettings reads local.settings.sample.json's Values, less stackOwned.
func sampleSettings(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "local.settings.sample.json"))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("local.settings.sample.json: %w", err)
	}
	for _, k := range stackOwned {
		delete(doc.Values, k)
	}
	return doc.Values, nil
}

// baselineFunctions are the function folders the baseline serves.
var baselineFunctions = []string{"process", "write"}

// baselineHostJSON keeps the Functions defaults: the queue extension's (maxPollingInterval
// as in local development), the Consumption plan's HTTP limits, written out because the
// host imitation reads absent ones as unbounded, and the Consumption functionTimeout.
const baselineHostJSON = `{
  "version": "2.0",
  "customHandler": {
    "description": { "defaultExecutablePath": "baseline", "workingDirectory": "", "arguments": [] },
    "enableForwardingHttpRequest": false
  },
  "functionTimeout": "00:05:00",
  "extensions": {
    "http": { "routePrefix": "api", "maxConcurrentRequests": 100, "maxOutstandingRequests": 200 },
    "queues": {
      "batchSize": 16,
      "newBatchThreshold": 8,
      "maxDequeueCount": 5,
      "visibilityTimeout": "00:00:00",
      "maxPollingInterval": "00:00:02",
      "messageEncoding": "base64"
    }
  }
}
`

// baselineVariant builds the baseline handler into dir and lays out a script root
// around it: baselineHostJSON and copies of the function folders it serves.
func baselineVariant(ctx context.Context, root, dir string) (variant, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "baseline"), "./test/bench/baseline")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return variant{}, fmt.Errorf("go build ./test/bench/baseline: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(baselineHostJSON), 0o644); err != nil {
		return variant{}, err
	}
	for _, fn := range baselineFunctions {
		b, err := os.ReadFile(filepath.Join(root, fn, "function.json"))
		if err != nil {
			return variant{}, err
		}
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			return variant{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "function.json"), b, 0o644); err != nil {
			return variant{}, err
		}
	}
	return variant{Name: baselineName, ScriptRoot: dir, Settings: map[string]string{}}, nil
}
