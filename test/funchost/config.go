package funchost

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hostConfig is the part of host.json the imitation acts on, after the
// AzureFunctionsJobHost__ overrides from the environment are applied.
type hostConfig struct {
	ExecutablePath   string
	Arguments        []string
	WorkerPath       string   // defaultWorkerPath, passed after Arguments
	WorkerArguments  []string // workerArguments, passed after WorkerPath
	WorkingDirectory string
	WorkerDirectory  string
	Forwarding       bool
	FunctionTimeout  time.Duration // 0 means none
	RoutePrefix      string
	MaxConcurrent    int // -1 means unbounded
	MaxOutstanding   int // -1 means unbounded
	Queues           queueOptions
}

type queueOptions struct {
	BatchSize          int
	NewBatchThreshold  int
	MaxDequeueCount    int
	VisibilityTimeout  time.Duration
	MaxPollingInterval time.Duration
	Base64             bool
}

// binding is one entry of a function.json "bindings" array.
type binding struct {
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Name       string   `json:"name"`
	AuthLevel  string   `json:"authLevel"`
	Methods    []string `json:"methods"`
	Route      *string  `json:"route"`
	QueueName  string   `json:"queueName"`
	Connection string   `json:"connection"`
	DataType   string   `json:"dataType"`
}

type function struct {
	Name     string
	Trigger  binding
	Inputs   []binding // trigger first
	Outputs  []binding
	Disabled bool
}

func (f *function) isHTTP() bool  { return strings.EqualFold(f.Trigger.Type, "httpTrigger") }
func (f *function) isQueue() bool { return strings.EqualFold(f.Trigger.Type, "queueTrigger") }

// pureHTTP is the host's test for the forwarding path: exactly one input, the HTTP
// trigger, and exactly one output, of type http.
func (f *function) pureHTTP() bool {
	return f.isHTTP() && len(f.Inputs) == 1 && len(f.Outputs) == 1 && strings.EqualFold(f.Outputs[0].Type, "http")
}

// The host's naming rules for function folders and binding names.
var (
	functionNameRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	bindingNameRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]{0,127}$`)
)

// loadHostConfig reads host.json under root and applies overrides from env, the way the
// host lets app settings named AzureFunctionsJobHost__a__b replace host.json's a.b.
func loadHostConfig(root string, env map[string]string) (*hostConfig, error) {
	b, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return nil, fmt.Errorf("reading host.json: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("host.json is not valid JSON: %w", err)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		const prefix = "azurefunctionsjobhost__"
		if len(k) > len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			setPath(doc, strings.Split(k[len(prefix):], "__"), env[k])
		}
	}

	c := &hostConfig{RoutePrefix: "api", MaxConcurrent: -1, MaxOutstanding: -1}
	ch := objectAt(doc, "customHandler")
	if ch == nil {
		ch = objectAt(doc, "httpWorker")
	}
	desc := objectAt(ch, "description")
	if desc == nil {
		return nil, fmt.Errorf("host.json has no customHandler.description")
	}
	c.ExecutablePath = stringAt(desc, "defaultExecutablePath")
	if c.ExecutablePath == "" {
		return nil, fmt.Errorf("host.json customHandler.description.defaultExecutablePath is required")
	}
	if args, ok := valueAt(desc, "arguments").([]any); ok {
		for _, a := range args {
			c.Arguments = append(c.Arguments, fmt.Sprint(a))
		}
	}
	c.WorkerPath = stringAt(desc, "defaultWorkerPath")
	if args, ok := valueAt(desc, "workerArguments").([]any); ok {
		for _, a := range args {
			c.WorkerArguments = append(c.WorkerArguments, fmt.Sprint(a))
		}
	}
	c.WorkingDirectory = stringAt(desc, "workingDirectory")
	c.WorkerDirectory = stringAt(desc, "workerDirectory")
	c.Forwarding = boolAt(ch, "enableForwardingHttpRequest")

	if v := valueAt(doc, "functionTimeout"); v != nil {
		s := fmt.Sprint(v)
		if s != "-1" {
			d, err := parseTimeSpan(s)
			if err != nil {
				return nil, fmt.Errorf("host.json functionTimeout: %w", err)
			}
			c.FunctionTimeout = d
		}
	} else {
		// The Consumption plan's default.
		c.FunctionTimeout = 5 * time.Minute
	}

	ext := objectAt(doc, "extensions")
	httpExt := objectAt(ext, "http")
	if v := valueAt(httpExt, "routePrefix"); v != nil {
		c.RoutePrefix = strings.Trim(fmt.Sprint(v), "/")
	}
	if n, ok, err := intAt(httpExt, "maxConcurrentRequests"); err != nil {
		return nil, err
	} else if ok {
		c.MaxConcurrent = n
	}
	if n, ok, err := intAt(httpExt, "maxOutstandingRequests"); err != nil {
		return nil, err
	} else if ok {
		c.MaxOutstanding = n
	}

	q := objectAt(ext, "queues")
	c.Queues = queueOptions{BatchSize: 16, MaxDequeueCount: 5, MaxPollingInterval: time.Minute, Base64: true, NewBatchThreshold: -1}
	if n, ok, err := intAt(q, "batchSize"); err != nil {
		return nil, err
	} else if ok {
		if n < 1 || n > 32 {
			return nil, fmt.Errorf("host.json extensions.queues.batchSize must be 1..32, not %d", n)
		}
		c.Queues.BatchSize = n
	}
	if n, ok, err := intAt(q, "newBatchThreshold"); err != nil {
		return nil, err
	} else if ok {
		c.Queues.NewBatchThreshold = n
	}
	if c.Queues.NewBatchThreshold < 0 {
		// (batchSize/2) × processor count; Consumption instances have one.
		c.Queues.NewBatchThreshold = c.Queues.BatchSize / 2
	}
	if n, ok, err := intAt(q, "maxDequeueCount"); err != nil {
		return nil, err
	} else if ok {
		if n < 1 {
			return nil, fmt.Errorf("host.json extensions.queues.maxDequeueCount must be at least 1")
		}
		c.Queues.MaxDequeueCount = n
	}
	if v := stringAt(q, "visibilityTimeout"); v != "" {
		d, err := parseTimeSpan(v)
		if err != nil {
			return nil, fmt.Errorf("host.json extensions.queues.visibilityTimeout: %w", err)
		}
		c.Queues.VisibilityTimeout = d
	}
	if v := stringAt(q, "maxPollingInterval"); v != "" {
		d, err := parseTimeSpan(v)
		if err != nil {
			return nil, fmt.Errorf("host.json extensions.queues.maxPollingInterval: %w", err)
		}
		c.Queues.MaxPollingInterval = max(d, 100*time.Millisecond)
	}
	switch enc := strings.ToLower(stringAt(q, "messageEncoding")); enc {
	case "", "base64":
	case "none":
		c.Queues.Base64 = false
	default:
		return nil, fmt.Errorf("host.json extensions.queues.messageEncoding %q: want base64 or none", enc)
	}
	return c, nil
}

// loadFunctions discovers functions the way the host does: direct subfolders of the
// script root holding a function.json, and nothing deeper.
func loadFunctions(root string) ([]*function, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var fns []*function
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "function.json"))
		if err != nil {
			continue
		}
		fn, err := parseFunction(e.Name(), b)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", e.Name(), err)
		}
		fns = append(fns, fn)
	}
	return fns, nil
}

func parseFunction(name string, b []byte) (*function, error) {
	if !functionNameRE.MatchString(name) || strings.EqualFold(name, "host") {
		return nil, fmt.Errorf("%q is not a valid function name", name)
	}
	var doc struct {
		Bindings []binding `json:"bindings"`
		Disabled bool      `json:"disabled"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("function.json: %w", err)
	}
	if len(doc.Bindings) == 0 {
		return nil, fmt.Errorf("function.json has no bindings")
	}
	fn := &function{Name: name, Disabled: doc.Disabled}
	seen := map[string]bool{}
	triggers := 0
	for _, bd := range doc.Bindings {
		if bd.Name != "$return" && !bindingNameRE.MatchString(bd.Name) {
			return nil, fmt.Errorf("binding name %q is invalid", bd.Name)
		}
		if seen[strings.ToLower(bd.Name)] {
			return nil, fmt.Errorf("binding name %q is used twice", bd.Name)
		}
		seen[strings.ToLower(bd.Name)] = true
		switch strings.ToLower(bd.Direction) {
		case "in":
			if strings.HasSuffix(strings.ToLower(bd.Type), "trigger") {
				triggers++
				fn.Trigger = bd
				fn.Inputs = append([]binding{bd}, fn.Inputs...)
			} else {
				fn.Inputs = append(fn.Inputs, bd)
			}
		case "out":
			fn.Outputs = append(fn.Outputs, bd)
		default:
			return nil, fmt.Errorf("binding %q has direction %q", bd.Name, bd.Direction)
		}
	}
	if triggers != 1 {
		return nil, fmt.Errorf("want exactly one trigger, found %d", triggers)
	}
	if fn.isHTTP() && fn.Trigger.AuthLevel == "" {
		fn.Trigger.AuthLevel = "function"
	}
	if !fn.isHTTP() && !fn.isQueue() {
		return nil, fmt.Errorf("trigger type %q is not imitated", fn.Trigger.Type)
	}
	return fn, nil
}

// parseTimeSpan reads a .NET TimeSpan as host.json writes it: [d.]hh:mm:ss[.fff].
func parseTimeSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days int
	if i := strings.Index(s, "."); i >= 0 && i < strings.Index(s, ":") {
		d, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("%q is not a time span", s)
		}
		days, s = d, s[i+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("%q is not a time span (hh:mm:ss)", s)
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, fmt.Errorf("%q is not a time span (hh:mm:ss)", s)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second)), nil
}

func findKey(m map[string]any, key string) (string, bool) {
	for k := range m {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}

func valueAt(m map[string]any, key string) any {
	if k, ok := findKey(m, key); ok {
		return m[k]
	}
	return nil
}

func objectAt(m map[string]any, key string) map[string]any {
	o, _ := valueAt(m, key).(map[string]any)
	return o
}

func stringAt(m map[string]any, key string) string {
	if v := valueAt(m, key); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func boolAt(m map[string]any, key string) bool {
	switch v := valueAt(m, key).(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

func intAt(m map[string]any, key string) (int, bool, error) {
	switch v := valueAt(m, key).(type) {
	case nil:
		return 0, false, nil
	case float64:
		return int(v), true, nil
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, false, fmt.Errorf("host.json %s: %q is not a number", key, v)
		}
		return n, true, nil
	default:
		return 0, false, fmt.Errorf("host.json %s: %v is not a number", key, v)
	}
}

// setPath writes value at a case-insensitive key path, creating objects on the way.
func setPath(m map[string]any, path []string, value string) {
	for i, p := range path {
		k, ok := findKey(m, p)
		if !ok {
			k = p
		}
		if i == len(path)-1 {
			m[k] = value
			return
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
}
