package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env is a fake environment: a setting is present when it is in the map.
type env map[string]string

func (e env) get(key string) (string, bool) {
	v, ok := e[key]
	return v, ok
}

// minimal is the least a handler needs: the port the host gives it, a queue connection
// and a Cosmos DB endpoint.
func minimal() env {
	return env{
		"FUNCTIONS_CUSTOMHANDLER_PORT": "7072",
		"AzureWebJobsStorage":          "UseDevelopmentStorage=true",
		"COSMOS_ENDPOINT":              "https://sluice-test.documents.azure.com:443/",
	}
}

func (e env) with(kv ...string) env {
	out := env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (e env) without(keys ...string) env {
	out := e.with()
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func mustLoad(t *testing.T, e env) *Config {
	t.Helper()
	c, err := Load(e.get)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// loadErr loads e, which must fail, and returns the error's lines.
func loadErr(t *testing.T, e env) []string {
	t.Helper()
	c, err := Load(e.get)
	if err == nil {
		t.Fatalf("Load succeeded with %+v, want an error", c)
	}
	if c != nil {
		t.Errorf("Load returned a config alongside %v", err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, minimal())
	checks := []struct {
		name      string
		got, want any
	}{
		{"Port", c.Port, 7072},
		{"AppRoot", c.AppRoot, ""},
		{"LogLevel", c.LogLevel, "info"},
		{"SafetyMargin", c.SafetyMargin, 5 * time.Second},
		{"FunctionTimeout", c.FunctionTimeout, 5 * time.Minute},
		{"OrdersQueue", c.OrdersQueue, "orders"},
		{"NotifyQueue", c.NotifyQueue, "notifications"},
		{"Storage.ConnectionString", c.Storage.ConnectionString, "UseDevelopmentStorage=true"},
		{"Cosmos.Database", c.Cosmos.Database, "sluice"},
		{"Cosmos.Container", c.Cosmos.Container, "orders"},
		{"Cosmos.CreateIfMissing", c.Cosmos.CreateIfMissing, false},
		{"Cosmos.SDKMaxRetries", c.Cosmos.SDKMaxRetries, 2},
		{"Cosmos.WriteMaxRetries", c.Cosmos.WriteMaxRetries, 2},
		{"Cosmos.ThrottleMaxRetries", c.Cosmos.ThrottleMaxRetries, 9},
		{"Cosmos.ThrottleMaxWait", c.Cosmos.ThrottleMaxWait, 30 * time.Second},
		{"Cosmos.OperationTimeout", c.Cosmos.OperationTimeout, 60 * time.Second},
		{"Cosmos.MaxConcurrency", c.Cosmos.MaxConcurrency, 16},
		{"Cosmos.WriteRateInitial", c.Cosmos.WriteRateInitial, 20.0},
		{"Cosmos.WriteRateGrowth", c.Cosmos.WriteRateGrowth, 0.05},
		{"Cosmos.Breaker", c.Cosmos.Breaker, BreakerConfig{FailureRate: 0.5, MinRequests: 10, Window: 10 * time.Second, Delay: 5 * time.Second, SuccessThreshold: 2}},
		{"FulfilmentURL", c.FulfilmentURL, ""},
		{"Fulfilment.MaxRetries", c.Fulfilment.MaxRetries, 3},
		{"Fulfilment.Breaker", c.Fulfilment.Breaker, BreakerConfig{FailureRate: 0.5, MinRequests: 5, Window: 30 * time.Second, Delay: 15 * time.Second, SuccessThreshold: 1}},
		{"HTTPMaxBodyBytes", c.HTTPMaxBodyBytes, int64(1 << 20)},
		{"HTTPShedMaxWait", c.HTTPShedMaxWait, 5 * time.Millisecond},
		{"Requeue", c.Requeue, RequeueConfig{BaseDelay: 5 * time.Second, MaxDelay: 5 * time.Minute, Horizon: time.Hour}},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadReadsSettings(t *testing.T) {
	c := mustLoad(t, minimal().with(
		"FUNCTIONS_CUSTOMHANDLER_PORT", "  8080 ",
		"LOG_LEVEL", "DEBUG",
		"INVOCATION_SAFETY_MARGIN", "00:00:10",
		"COSMOS_DATABASE", "db2",
		"COSMOS_CONTAINER", "  ",
		"COSMOS_SDK_RETRY_DELAY", "150ms",
		"COSMOS_THROTTLE_MAX_RETRIES", "3",
		"COSMOS_WRITE_RATE_INITIAL", "12.5",
		"COSMOS_BREAKER_FAILURE_RATE", "0.25",
		"COSMOS_BREAKER_WINDOW", "00:01:00",
		"FULFILMENT_API_URL", "https://fulfil.invalid/api",
		"FULFILMENT_BREAKER_SUCCESS_THRESHOLD", "4",
		"QUEUE_RETRY_HORIZON", "1.00:00:00",
	))
	if c.Port != 8080 || c.LogLevel != "debug" || c.SafetyMargin != 10*time.Second {
		t.Errorf("Port, LogLevel, SafetyMargin = %v, %v, %v", c.Port, c.LogLevel, c.SafetyMargin)
	}
	if c.Cosmos.Database != "db2" || c.Cosmos.Container != "orders" {
		t.Errorf("Database, Container = %q, %q; a blank setting keeps the default", c.Cosmos.Database, c.Cosmos.Container)
	}
	if c.Cosmos.SDKRetryDelay != 150*time.Millisecond || c.Cosmos.ThrottleMaxRetries != 3 || c.Cosmos.WriteRateInitial != 12.5 {
		t.Errorf("Cosmos = %+v", c.Cosmos)
	}
	if c.Cosmos.Breaker.FailureRate != 0.25 || c.Cosmos.Breaker.Window != time.Minute {
		t.Errorf("Cosmos.Breaker = %+v", c.Cosmos.Breaker)
	}
	if c.FulfilmentURL != "https://fulfil.invalid/api" || c.Fulfilment.Breaker.SuccessThreshold != 4 {
		t.Errorf("Fulfilment = %q %+v", c.FulfilmentURL, c.Fulfilment)
	}
	if c.Requeue.Horizon != 24*time.Hour {
		t.Errorf("Horizon = %v, want 24h", c.Requeue.Horizon)
	}
}

func TestLoadStorage(t *testing.T) {
	base := minimal().without("AzureWebJobsStorage")
	c := mustLoad(t, base.with("AzureWebJobsStorage__accountName", "acct", "AzureWebJobsStorage__clientId", "cid"))
	if c.Storage.QueueServiceURL != "https://acct.queue.core.windows.net/" || c.Storage.ClientID != "cid" || c.Storage.ConnectionString != "" {
		t.Errorf("Storage = %+v", c.Storage)
	}
	c = mustLoad(t, base.with("AzureWebJobsStorage__accountName", "acct", "AzureWebJobsStorage__queueServiceUri", "https://q.example.test/"))
	if c.Storage.QueueServiceURL != "https://q.example.test/" {
		t.Errorf("QueueServiceURL = %q, want the explicit URI over the account name", c.Storage.QueueServiceURL)
	}
	for _, e := range []env{base, base.with("AzureWebJobsStorage", "  ")} {
		lines := loadErr(t, e)
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "AzureWebJobsStorage ") {
			t.Errorf("without storage: %q, want one AzureWebJobsStorage error", lines)
		}
	}
}

func TestLoadCosmosEndpoint(t *testing.T) {
	local := mustLoad(t, minimal().with("COSMOS_ENDPOINT", "http://127.0.0.1:8081/", "COSMOS_KEY", "emulator-key"))
	if !local.Cosmos.CreateIfMissing || local.Cosmos.Key != "emulator-key" {
		t.Errorf("local emulator: CreateIfMissing=%v Key=%q", local.Cosmos.CreateIfMissing, local.Cosmos.Key)
	}
	for _, ep := range []string{"https://localhost:8081/", "http://[::1]:8081/"} {
		if c := mustLoad(t, minimal().with("COSMOS_ENDPOINT", ep)); !c.Cosmos.CreateIfMissing {
			t.Errorf("%s: CreateIfMissing defaults to false for a local endpoint", ep)
		}
	}
	if c := mustLoad(t, minimal().with("COSMOS_ENDPOINT", "http://localhost:8081/", "COSMOS_CREATE_IF_MISSING", "false")); c.Cosmos.CreateIfMissing {
		t.Error("COSMOS_CREATE_IF_MISSING=false ignored")
	}
	if c := mustLoad(t, minimal().with("COSMOS_CREATE_IF_MISSING", "1")); !c.Cosmos.CreateIfMissing {
		t.Error("COSMOS_CREATE_IF_MISSING=1 ignored")
	}
}

func TestLoadSettingErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		key, value, want string
	}{
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "abc", "whole number"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "0", "1 to 65535"},
		{"FUNCTIONS_CUSTOMHANDLER_PORT", "65536", "1 to 65535"},
		{"LOG_LEVEL", "verbose", "want one of"},
		{"INVOCATION_SAFETY_MARGIN", "soon", "duration"},
		{"INVOCATION_SAFETY_MARGIN", "500ms", "want 1s to 1h"},
		{"INVOCATION_SAFETY_MARGIN", "213504.00:00:00", "duration"},
		{"COSMOS_ENDPOINT", "not a url", "absolute https URL"},
		{"COSMOS_ENDPOINT", "ftp://host/", "absolute https URL"},
		{"COSMOS_ENDPOINT", "/relative", "absolute https URL"},
		{"COSMOS_ENDPOINT", "http://sluice.documents.azure.com/", "https"},
		{"COSMOS_CREATE_IF_MISSING", "maybe", "true or false"},
		{"COSMOS_SDK_MAX_RETRIES", "11", "0 to 10"},
		{"COSMOS_SDK_RETRY_DELAY", "0s", "want 1ms"},
		{"COSMOS_SDK_MAX_RETRY_DELAY", "x", "duration"},
		{"COSMOS_SDK_TRY_TIMEOUT", "10ms", "want 100ms"},
		{"COSMOS_THROTTLE_MAX_RETRIES", "-1", "0 to 100"},
		{"COSMOS_THROTTLE_MAX_WAIT", "2h", "0s to 1h"},
		{"COSMOS_OPERATION_TIMEOUT", "-5s", "want 1s"},
		{"COSMOS_MAX_CONCURRENCY", "0", "1 to 10000"},
		{"COSMOS_QUEUE_WAIT", "1.5", "duration"},
		{"COSMOS_WRITE_RATE_INITIAL", "fast", "a number"},
		{"COSMOS_WRITE_RATE_MIN", "0", "want 0.1"},
		{"COSMOS_WRITE_RATE_MAX", "2e6", "want 0.1"},
		{"COSMOS_WRITE_RATE_GROWTH", "NaN", ""},
		{"COSMOS_BREAKER_FAILURE_RATE", "1.5", "0.01 to 1"},
		{"COSMOS_BREAKER_MIN_REQUESTS", "0", "1 to 100000"},
		{"COSMOS_BREAKER_WINDOW", "100ms", "want 1s"},
		{"COSMOS_BREAKER_DELAY", "1ms", "want 100ms"},
		{"COSMOS_BREAKER_SUCCESS_THRESHOLD", "x", "whole number"},
		{"FULFILMENT_API_URL", "fulfil.example", "absolute http(s) URL"},
		{"FULFILMENT_API_URL", "http://fulfil.example/", "https"},
		{"FULFILMENT_ATTEMPT_TIMEOUT", "1ms", "want 100ms"},
		{"FULFILMENT_MAX_RETRIES", "101", "0 to 100"},
		{"FULFILMENT_MAX_WAIT", "x", "duration"},
		{"FULFILMENT_MAX_CONCURRENCY", "0", "1 to 10000"},
		{"FULFILMENT_BREAKER_FAILURE_RATE", "0", "0.01 to 1"},
		{"FULFILMENT_BREAKER_DELAY", "2h", "to 1h"},
		{"HTTP_MAX_BODY_BYTES", "100", "1024 to"},
		{"HTTP_SHED_MAX_WAIT", "2m", "to 1m"},
		{"QUEUE_REQUEUE_BASE_DELAY", "8.00:00:00", "to 168h"},
		{"QUEUE_REQUEUE_MAX_DELAY", "500ms", "want 1s"},
		{"QUEUE_RETRY_HORIZON", "30s", "want 1m"},
		{"AzureFunctionsJobHost__functionTimeout", "forever", "positive duration"},
		{"AzureFunctionsJobHost__functionTimeout", "00:00:00", "positive duration"},
		{"AzureFunctionsJobHost__functionTimeout", "-1m", "positive duration"},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			lines := loadErr(t, minimal().with(tc.key, tc.value))
			if len(lines) != 1 {
				t.Errorf("%d errors, want 1: %q", len(lines), lines)
			}
			if !strings.HasPrefix(lines[0], tc.key+" ") {
				t.Errorf("error %q does not start with the setting %s", lines[0], tc.key)
			}
			if !strings.Contains(lines[0], tc.want) {
				t.Errorf("error %q does not say %q", lines[0], tc.want)
			}
		})
	}
}

func TestLoadCosmosKeyOnlyForTheEmulator(t *testing.T) {
	lines := loadErr(t, minimal().with("COSMOS_KEY", "secret-value"))
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "COSMOS_KEY ") || !strings.Contains(lines[0], "managed identity") {
		t.Errorf("errors = %q", lines)
	}
	if strings.Contains(strings.Join(lines, "\n"), "secret-value") {
		t.Error("the error repeats the key's value")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	lines := loadErr(t, env{"LOG_LEVEL": "loud", "COSMOS_MAX_CONCURRENCY": "none"})
	joined := strings.Join(lines, "\n")
	for _, key := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "LOG_LEVEL", "AzureWebJobsStorage", "COSMOS_ENDPOINT", "COSMOS_MAX_CONCURRENCY"} {
		if !strings.Contains(joined, key+" ") {
			t.Errorf("errors do not mention %s:\n%s", key, joined)
		}
	}
	for _, l := range lines {
		if l == "" || strings.IndexByte(l, ' ') < 1 {
			t.Errorf("error line %q does not start with a setting name", l)
		}
	}
	// A port that is set but blank is treated as not set.
	lines = loadErr(t, minimal().with("FUNCTIONS_CUSTOMHANDLER_PORT", ""))
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "FUNCTIONS_CUSTOMHANDLER_PORT ") {
		t.Errorf("blank port: %q", lines)
	}
}

func TestLoadCrossChecks(t *testing.T) {
	cases := []struct {
		name string
		kv   []string
		key  string
	}{
		{"margin exceeds timeout", []string{"AzureFunctionsJobHost__functionTimeout", "00:00:05", "INVOCATION_SAFETY_MARGIN", "5s"}, "INVOCATION_SAFETY_MARGIN"},
		{"operation timeout exceeds budget", []string{"AzureFunctionsJobHost__functionTimeout", "00:01:00", "COSMOS_THROTTLE_MAX_WAIT", "10s", "COSMOS_QUEUE_WAIT", "10s", "FULFILMENT_MAX_WAIT", "0s", "FULFILMENT_MAX_RETRIES", "0"}, "COSMOS_OPERATION_TIMEOUT"},
		{"throttle wait not below operation timeout", []string{"COSMOS_THROTTLE_MAX_WAIT", "60s"}, "COSMOS_THROTTLE_MAX_WAIT"},
		{"sdk retries exceed operation timeout", []string{"COSMOS_SDK_MAX_RETRIES", "10", "COSMOS_SDK_TRY_TIMEOUT", "10s"}, "COSMOS_SDK_MAX_RETRIES"},
		{"sdk delay above its max", []string{"COSMOS_SDK_RETRY_DELAY", "3s", "COSMOS_SDK_MAX_RETRY_DELAY", "1s", "COSMOS_SDK_MAX_RETRIES", "1"}, "COSMOS_SDK_RETRY_DELAY"},
		{"queue wait exceeds budget", []string{"COSMOS_QUEUE_WAIT", "5m"}, "COSMOS_QUEUE_WAIT"},
		{"rate min above max", []string{"COSMOS_WRITE_RATE_MIN", "100", "COSMOS_WRITE_RATE_MAX", "10", "COSMOS_WRITE_RATE_INITIAL", "50"}, "COSMOS_WRITE_RATE_MIN"},
		{"initial rate below min", []string{"COSMOS_WRITE_RATE_MIN", "60"}, "COSMOS_WRITE_RATE_INITIAL"},
		{"initial rate above max", []string{"COSMOS_WRITE_RATE_MAX", "10"}, "COSMOS_WRITE_RATE_INITIAL"},
		{"fulfilment exceeds budget", []string{"FULFILMENT_MAX_RETRIES", "40"}, "FULFILMENT_MAX_RETRIES"},
		{"requeue base above max", []string{"QUEUE_REQUEUE_BASE_DELAY", "10m"}, "QUEUE_REQUEUE_BASE_DELAY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := loadErr(t, minimal().with(tc.kv...))
			found := false
			for _, l := range lines {
				if strings.HasPrefix(l, tc.key+" ") {
					found = true
				}
				if strings.IndexByte(l, ' ') < 1 || !strings.Contains(l, "_") {
					t.Errorf("error line %q does not name a setting", l)
				}
			}
			if !found {
				t.Errorf("errors %q do not start with %s", lines, tc.key)
			}
		})
	}
	// Exactly at the limits is accepted.
	mustLoad(t, minimal().with("AzureFunctionsJobHost__functionTimeout", "00:01:05", "COSMOS_THROTTLE_MAX_WAIT", "59s",
		"COSMOS_QUEUE_WAIT", "60s", "FULFILMENT_MAX_RETRIES", "2", "FULFILMENT_ATTEMPT_TIMEOUT", "10s", "FULFILMENT_MAX_WAIT", "30s"))
}

// appRoot writes files under a temporary app root and returns it.
func appRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const queueFunction = `{"bindings":[{"type":"queueTrigger","direction":"in","name":"order","queueName":%q,"connection":"AzureWebJobsStorage"}]}`

func TestLoadHostJSON(t *testing.T) {
	root := appRoot(t, map[string]string{
		"host.json":             `{"version":"2.0","functionTimeout":"00:10:00","extensions":{"queues":{"maxDequeueCount":5}}}`,
		"process/function.json": strings.Replace(queueFunction, "%q", `"orders-in"`, 1),
		"notify/function.json":  `{"bindings":[{"type":"http","direction":"out"},{"type":"QueueTrigger","direction":"in","queueName":"notes-in"}]}`,
	})
	c := mustLoad(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", root))
	if c.AppRoot != root || c.FunctionTimeout != 10*time.Minute {
		t.Errorf("AppRoot, FunctionTimeout = %q, %v; want %q, 10m", c.AppRoot, c.FunctionTimeout, root)
	}
	if c.OrdersQueue != "orders-in" || c.NotifyQueue != "notes-in" {
		t.Errorf("queues = %q, %q; want orders-in, notes-in", c.OrdersQueue, c.NotifyQueue)
	}

	// The app setting overrides host.json, as the host's own override does.
	c = mustLoad(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", root, "AzureFunctionsJobHost__functionTimeout", "00:20:00"))
	if c.FunctionTimeout != 20*time.Minute {
		t.Errorf("with override: FunctionTimeout = %v, want 20m", c.FunctionTimeout)
	}
	// It also applies without an app root, in Go form too.
	c = mustLoad(t, minimal().with("AzureFunctionsJobHost__functionTimeout", "15m"))
	if c.FunctionTimeout != 15*time.Minute {
		t.Errorf("override without root: FunctionTimeout = %v, want 15m", c.FunctionTimeout)
	}
	// A blank override is no override.
	c = mustLoad(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", root, "AzureFunctionsJobHost__functionTimeout", " "))
	if c.FunctionTimeout != 10*time.Minute {
		t.Errorf("blank override: FunctionTimeout = %v, want host.json's 10m", c.FunctionTimeout)
	}
}

func TestLoadHostJSONDefaults(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"empty root":          {},
		"no functionTimeout":  {"host.json": `{"version":"2.0"}`},
		"no queue trigger":    {"host.json": `{}`, "process/function.json": `{"bindings":[{"type":"httpTrigger"}]}`},
		"function.json empty": {"process/function.json": `{}`},
	} {
		t.Run(name, func(t *testing.T) {
			c := mustLoad(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", appRoot(t, files)))
			if c.FunctionTimeout != 5*time.Minute || c.OrdersQueue != "orders" || c.NotifyQueue != "notifications" {
				t.Errorf("FunctionTimeout, queues = %v, %q, %q; want the defaults", c.FunctionTimeout, c.OrdersQueue, c.NotifyQueue)
			}
		})
	}
}

func TestLoadHostJSONErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string // every one must appear in one error line
	}{
		{"bad functionTimeout", map[string]string{"host.json": `{"functionTimeout":"ten minutes"}`}, []string{"host.json functionTimeout", "ten minutes"}},
		{"zero functionTimeout", map[string]string{"host.json": `{"functionTimeout":"00:00:00"}`}, []string{"host.json functionTimeout"}},
		{"negative functionTimeout", map[string]string{"host.json": `{"functionTimeout":"-00:05:00"}`}, []string{"host.json functionTimeout"}},
		{"functionTimeout not a string", map[string]string{"host.json": `{"functionTimeout":600}`}, []string{"FUNCTIONS_APP_ROOT_PATH", "host.json"}},
		{"malformed host.json", map[string]string{"host.json": `{"version":`}, []string{"FUNCTIONS_APP_ROOT_PATH", "host.json"}},
		{"malformed function.json", map[string]string{"process/function.json": `{"bindings":`}, []string{"process/function.json"}},
		{"app-setting queue name", map[string]string{"notify/function.json": strings.Replace(queueFunction, "%q", `"%NOTIFY_QUEUE%"`, 1)}, []string{"notify/function.json", "%NOTIFY_QUEUE%"}},
		{"host.json is a directory", map[string]string{"host.json/x": ``}, []string{"FUNCTIONS_APP_ROOT_PATH", "host.json"}},
		{"function.json is a directory", map[string]string{"process/function.json/x": ``}, []string{"function.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := loadErr(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", appRoot(t, tc.files)))
			joined := strings.Join(lines, "\n")
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("errors %q do not mention %q", lines, w)
				}
			}
		})
	}
}

func TestLoadHostJSONTimeoutDrivesValidation(t *testing.T) {
	root := appRoot(t, map[string]string{"host.json": `{"functionTimeout":"00:00:30"}`})
	lines := loadErr(t, minimal().with("FUNCTIONS_APP_ROOT_PATH", root))
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "COSMOS_OPERATION_TIMEOUT ") || !strings.Contains(joined, "30s") {
		t.Errorf("a 30s functionTimeout should make the 60s COSMOS_OPERATION_TIMEOUT invalid: %q", lines)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":                  true,
		"LocalHost":                  true,
		"127.0.0.1":                  true,
		"127.1.2.3":                  true,
		"::1":                        true,
		"[::1]":                      true,
		"0:0:0:0:0:0:0:1":            true,
		"":                           false,
		"0.0.0.0":                    false,
		"::":                         false,
		"10.0.0.1":                   false,
		"192.168.1.1":                false,
		"localhost.example.com":      false,
		"mylocalhost":                false,
		"127.0.0.1.nip.io":           false,
		"sluice.documents.azure.com": false,
		"128.0.0.1":                  false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s":             30 * time.Second,
		"1500ms":          1500 * time.Millisecond,
		"1h2m3s":          time.Hour + 2*time.Minute + 3*time.Second,
		"0":               0,
		" 45s ":           45 * time.Second,
		"00:00:30":        30 * time.Second,
		"00:05:00":        5 * time.Minute,
		"01:02:03":        time.Hour + 2*time.Minute + 3*time.Second,
		"00:00:01.5":      1500 * time.Millisecond,
		"00:00:00.001":    time.Millisecond,
		"1.00:00:00":      24 * time.Hour,
		"2.03:04:05":      51*time.Hour + 4*time.Minute + 5*time.Second,
		"1.02:00:00.250":  26*time.Hour + 250*time.Millisecond,
		" 00:10:00\t":     10 * time.Minute,
		"100:00:00":       100 * time.Hour,
		"106000.00:00:00": 106000 * 24 * time.Hour,
		"00:00:59.999":    59*time.Second + 999*time.Millisecond,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", " ", "abc", "30", "1:2", "1:2:3:4", "00:60:00", "00:00:60", "-1:00:00", "00:-1:00",
		"00:00:-1", "a.00:00:00", "x:00:00", "00:y:00", "00:00:z", "00:00", "1.5", "1d",
		"106752.00:00:00", "213504.00:00:00", "9999999999:00:00", "2562048:00:00",
		"-00:05:00", "-0.00:05:00", "00:-0:30", "+1:00:00", "-1.00:00:00",
		"00:00:NaN", "00:00:Inf", "00:00:nan",
	} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}
