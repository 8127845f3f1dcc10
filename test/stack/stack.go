// Package stack assembles the local pipeline for end-to-end tests, the benchmark and
// `make run`: Azurite, the Cosmos DB stand-in (optionally behind the fault proxy), the
// fake fulfilment API, and one or more instances of the real handler binary, each under
// its own imitation of the Functions host. Every part listens on 127.0.0.1 only.
package stack

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/cosmosstandin"
	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/fulfilmentfake"
	"github.com/sluice-dev/sluice/test/funchost"
)

// Options shapes a Stack.
type Options struct {
	// Instances is how many handler instances poll the queues; 1 when zero.
	Instances int
	// FaultProxy puts the fault proxy between the handlers and the Cosmos stand-in.
	FaultProxy bool
	// WritesPerSecond is the proxy's write capacity; zero means unlimited.
	WritesPerSecond float64
	// Settings are app settings for every instance, over the stack's own.
	Settings map[string]string
	// NoFulfilment leaves FULFILMENT_API_URL unset.
	NoFulfilment bool
	// Logger receives the parts' logs; nil discards them.
	Logger *slog.Logger
	// Console receives the handlers' raw stdout and stderr lines, for tests that search
	// them.
	Console io.Writer
	// ScriptRoot is the folder holding the host.json and function folders the hosts
	// serve, and with them the handler that host.json names; the repository root when
	// empty.
	ScriptRoot string
	// BeforeHosts, when set, runs once the stand-ins are up and before any host starts,
	// for work the handlers must not see half done, such as filling a queue.
	BeforeHosts func(ctx context.Context, s *Stack) error
	// HostOptions, when set, adjusts each host's options before it starts, e.g. to
	// enforce function keys.
	HostOptions func(*funchost.Options)
}

// Stack is a running local pipeline.
type Stack struct {
	Root       string
	Azurite    *azurite.Server
	Cosmos     *cosmosstandin.Server
	Proxy      *faultproxy.Proxy
	Fulfilment *fulfilmentfake.Server
	Hosts      []*funchost.Host
	Settings   map[string]string

	queues *azqueue.ServiceClient
	cosmos *azcosmos.ContainerClient
}

// RepoRoot finds the repository root (the folder holding host.json and go.mod) from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "host.json")) && fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no folder holding host.json and go.mod above the working directory")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var buildOnce sync.Once
var buildErr error

// BuildHandler builds bin/handler for this machine, once per process.
func BuildHandler(root string) error {
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "bin", "handler"), "./handler")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./handler: %v\n%s", err, out)
		}
	})
	return buildErr
}

// Start brings up the stack. Close it when done.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Instances <= 0 {
		o.Instances = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := BuildHandler(root); err != nil {
		return nil, err
	}
	s := &Stack{Root: root}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.Azurite, err = azurite.Start(ctx, azurite.Options{RepoRoot: root, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	if s.Cosmos, err = cosmosstandin.Start(ctx, cosmosstandin.Options{RepoRoot: root, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("cosmos stand-in: %w", err)
	}
	endpoint := s.Cosmos.Endpoint
	if o.FaultProxy {
		s.Proxy, err = faultproxy.Start(ctx, faultproxy.Options{Target: s.Cosmos.Endpoint, WritesPerSecond: o.WritesPerSecond, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("fault proxy: %w", err)
		}
		endpoint = s.Proxy.Endpoint()
	}
	settings := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      s.Azurite.ConnectionString,
		"COSMOS_ENDPOINT":          endpoint,
		"COSMOS_KEY":               cosmosstandin.EmulatorKey,
		"COSMOS_DATABASE":          "sluice",
		"COSMOS_CONTAINER":         "orders",
		"LOG_LEVEL":                "info",
	}
	if !o.NoFulfilment {
		if s.Fulfilment, err = fulfilmentfake.Start(""); err != nil {
			return nil, fmt.Errorf("fulfilment fake: %w", err)
		}
		settings["FULFILMENT_API_URL"] = s.Fulfilment.URL()
	}
	for k, v := range o.Settings {
		settings[k] = v
	}
	s.Settings = settings
	if err := s.openClients(); err != nil {
		return nil, err
	}
	if o.BeforeHosts != nil {
		if err := o.BeforeHosts(ctx, s); err != nil {
			return nil, err
		}
	}
	scriptRoot := root
	if o.ScriptRoot != "" {
		scriptRoot = o.ScriptRoot
	}
	for i := 0; i < o.Instances; i++ {
		ho := funchost.Options{
			ScriptRoot: scriptRoot,
			HTTPAddr:   "127.0.0.1:0",
			Env:        settings,
			Logger:     o.Logger.With("instance", i),
			Console:    o.Console,
		}
		if o.HostOptions != nil {
			o.HostOptions(&ho)
		}
		h, err := funchost.Start(ctx, ho)
		if err != nil {
			return nil, fmt.Errorf("host %d: %w", i, err)
		}
		s.Hosts = append(s.Hosts, h)
	}
	ok = true
	return s, nil
}

// StartT starts a stack for a test and closes it at the end.
func StartT(t testing.TB, o Options) *Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("starting the stack: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Stack) openClients() error {
	var err error
	if s.queues, err = azqueue.NewServiceClientFromConnectionString(s.Azurite.ConnectionString, nil); err != nil {
		return err
	}
	// The tests read the stand-in directly, never through the proxy, so their reads are
	// neither throttled nor counted.
	cred, err := azcosmos.NewKeyCredential(cosmosstandin.EmulatorKey)
	if err != nil {
		return err
	}
	client, err := azcosmos.NewClientWithKey(s.Cosmos.Endpoint, cred, &azcosmos.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: s.Cosmos.HTTPClient()},
	})
	if err != nil {
		return err
	}
	s.cosmos, err = client.NewContainer("sluice", "orders")
	return err
}

// Close stops everything the stack started, hosts first.
func (s *Stack) Close() {
	var wg sync.WaitGroup
	for _, h := range s.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = h.Stop(ctx)
		}()
	}
	wg.Wait()
	if s.Fulfilment != nil {
		s.Fulfilment.Close()
	}
	if s.Proxy != nil {
		_ = s.Proxy.Close()
	}
	if s.Cosmos != nil {
		_ = s.Cosmos.Close()
	}
	if s.Azurite != nil {
		_ = s.Azurite.Close()
	}
}

// URL is the first host's HTTP front, e.g. http://127.0.0.1:PORT.
func (s *Stack) URL() string { return s.Hosts[0].URL() }

// Enqueue puts text on a queue the way a producer using the host's default encoding
// does: base64.
func (s *Stack) Enqueue(ctx context.Context, queue, text string) error {
	return s.EnqueueRaw(ctx, queue, base64.StdEncoding.EncodeToString([]byte(text)))
}

// EnqueueRaw puts body on a queue exactly as given.
func (s *Stack) EnqueueRaw(ctx context.Context, queue, body string) error {
	q := s.queues.NewQueueClient(queue)
	if _, err := q.Create(ctx, nil); err != nil && !strings.Contains(err.Error(), "QueueAlreadyExists") {
		return err
	}
	_, err := q.EnqueueMessage(ctx, body, nil)
	return err
}

// QueueMessage is a message read off a queue, decoded from base64 when it was encoded.
type QueueMessage struct {
	Text string
	Raw  string
}

// Peek returns up to 32 visible messages of a queue without taking them.
func (s *Stack) Peek(ctx context.Context, queue string) ([]QueueMessage, error) {
	n := int32(32)
	resp, err := s.queues.NewQueueClient(queue).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: &n})
	if err != nil {
		if strings.Contains(err.Error(), "QueueNotFound") {
			return nil, nil
		}
		return nil, err
	}
	var out []QueueMessage
	for _, m := range resp.Messages {
		raw := ""
		if m.MessageText != nil {
			raw = *m.MessageText
		}
		text := raw
		if b, err := base64.StdEncoding.DecodeString(raw); err == nil {
			text = string(b)
		}
		out = append(out, QueueMessage{Text: text, Raw: raw})
	}
	return out, nil
}

// ApproximateCount is a queue's message count, invisible messages included.
func (s *Stack) ApproximateCount(ctx context.Context, queue string) (int, error) {
	resp, err := s.queues.NewQueueClient(queue).GetProperties(ctx, nil)
	if err != nil {
		if strings.Contains(err.Error(), "QueueNotFound") {
			return 0, nil
		}
		return 0, err
	}
	if resp.ApproximateMessagesCount == nil {
		return 0, nil
	}
	return int(*resp.ApproximateMessagesCount), nil
}

// Item reads an order straight from the stand-in.
func (s *Stack) Item(ctx context.Context, customerID, id string) (map[string]any, bool, error) {
	resp, err := s.cosmos.ReadItem(ctx, azcosmos.NewPartitionKeyString(customerID), id, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Value, &m); err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// CountByID queries every item in the container and counts them by id, so tests can
// assert "exactly once".
func (s *Stack) CountByID(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	pager := s.cosmos.NewQueryItemsPager("SELECT c.id, c.customerId FROM c", azcosmos.NewPartitionKey(), nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Items {
			var it struct {
				ID         string `json:"id"`
				CustomerID string `json:"customerId"`
			}
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, err
			}
			counts[it.CustomerID+"/"+it.ID]++
		}
	}
	return counts, nil
}
