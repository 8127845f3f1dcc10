// Command baseline is the handler the benchmark measures Sluice against: the one a user
// would otherwise ship. It speaks the same invocation protocol and parses orders the same
// way, but writes each order straight to Cosmos DB with a plain azcosmos client on its
// default ClientOptions, so the only retries are azcore's defaults (three, honouring the
// server's x-ms-retry-after-ms). Whatever still fails goes back to the host as a naive
// handler would send it: a queue invocation fails, so the host redelivers the message
// and poisons it after maxDequeueCount; a PUT answers 503 when the store was throttling
// or unavailable and 500 otherwise, with no Retry-After.
//
// It serves the two functions the benchmark drives, process and write, from a script
// root whose host.json keeps the Functions defaults.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
)

// maxBodyBytes bounds a PUT body, as HTTP_MAX_BODY_BYTES does for Sluice by default.
const maxBodyBytes = 1 << 20

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	container, err := openContainer(ctx, os.Getenv("COSMOS_ENDPOINT"), os.Getenv("COSMOS_KEY"),
		os.Getenv("COSMOS_DATABASE"), os.Getenv("COSMOS_CONTAINER"))
	if err != nil {
		return err
	}
	s := &store{container: container}
	srv, err := invocation.NewServer(invocation.ServerOptions{Logger: logger},
		invocation.Registration{Name: "process", Trigger: invocation.QueueTrigger, Func: invocation.FunctionFunc(s.process)},
		invocation.Registration{Name: "write", Trigger: invocation.HTTPTrigger, Func: invocation.FunctionFunc(s.write)},
	)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")))
	if err != nil {
		return fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT: %w", err)
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(shutdownCtx)
	}()
	if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openContainer builds the client on default options, creating the database and
// container first, as the usual getting-started code does.
func openContainer(ctx context.Context, endpoint, key, database, name string) (*azcosmos.ContainerClient, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("COSMOS_ENDPOINT %q is not a URL", endpoint)
	}
	if !config.IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("COSMOS_ENDPOINT %q: the baseline runs against a local emulator only", endpoint)
	}
	cred, err := azcosmos.NewKeyCredential(key)
	if err != nil {
		return nil, fmt.Errorf("COSMOS_KEY: %w", err)
	}
	client, err := azcosmos.NewClientWithKey(endpoint, cred, emulatorOptions(u.Host))
	if err != nil {
		return nil, err
	}
	if _, err := client.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: database}, nil); err != nil && statusOf(err) != http.StatusConflict {
		return nil, fmt.Errorf("create database: %w", err)
	}
	db, err := client.NewDatabase(database)
	if err != nil {
		return nil, err
	}
	_, err = db.CreateContainer(ctx, azcosmos.ContainerProperties{
		ID:                     name,
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/customerId"}},
	}, nil)
	if err != nil && statusOf(err) != http.StatusConflict {
		return nil, fmt.Errorf("create container: %w", err)
	}
	return client.NewContainer(database, name)
}

// emulatorOptions are the default ClientOptions plus the two allowances any client of a
// local emulator needs, the same as Sluice's store makes for a loopback endpoint: trust
// its self-signed certificate, and keep sending to the configured address whatever the
// account metadata advertises. The connection pool is sized as Sluice's is, so the
// comparison is between policies, not between pools.
func emulatorOptions(host string) *azcosmos.ClientOptions {
	opts := &azcosmos.ClientOptions{}
	opts.Transport = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback emulator only
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	opts.PerRetryPolicies = []policy.Policy{pinHost(host)}
	return opts
}

type pinHost string

func (p pinHost) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().URL.Host = string(p)
	req.Raw().Host = string(p)
	return req.Next()
}

type store struct {
	container *azcosmos.ContainerClient
}

func (s *store) upsert(ctx context.Context, o *order.Order) error {
	doc, err := cosmosstore.Document(o)
	if err != nil {
		return err
	}
	_, err = s.container.UpsertItem(ctx, azcosmos.NewPartitionKeyString(o.CustomerID), doc, nil)
	return err
}

// process stores a queued order; any error fails the invocation.
func (s *store) process(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	msg, err := inv.Request.QueueTrigger("order")
	if err != nil {
		return nil, err
	}
	o, err := order.Parse([]byte(msg.Text), order.ParseOptions{})
	if err != nil {
		return nil, err
	}
	if err := s.upsert(ctx, o); err != nil {
		return nil, fmt.Errorf("upsert order %s: %w", o.ID, err)
	}
	inv.Log("order stored", "order_id", o.ID, "customer_id", o.CustomerID)
	return &invocation.Response{}, nil
}

// write stores the order in a PUT body and answers when the store has.
func (s *store) write(ctx context.Context, inv *invocation.Invocation) (*invocation.Response, error) {
	reply := func(r invocation.HTTPResponse) (*invocation.Response, error) {
		return &invocation.Response{Outputs: map[string]any{"res": r}}, nil
	}
	req, err := inv.Request.HTTPTrigger("req")
	if err != nil {
		return reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()}))
	}
	body, p := invocation.JSONBody(req, maxBodyBytes)
	if p != nil {
		return reply(invocation.ProblemResponse(*p))
	}
	o, err := order.Parse(body, order.ParseOptions{})
	if err != nil {
		return reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: err.Error()}))
	}
	if o.ID != req.Params["id"] || o.CustomerID != req.Params["customerId"] {
		return reply(invocation.ProblemResponse(invocation.Problem{Status: http.StatusBadRequest, Detail: "the body names another order than the URL"}))
	}
	if err := s.upsert(ctx, o); err != nil {
		inv.Logger.Error("upsert failed", "order_id", o.ID, "err", err)
		status := http.StatusInternalServerError
		if code := statusOf(err); code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			status = http.StatusServiceUnavailable
		}
		return reply(invocation.ProblemResponse(invocation.Problem{Status: status, Detail: "the order could not be stored"}))
	}
	inv.Log("order stored", "order_id", o.ID, "customer_id", o.CustomerID)
	return reply(invocation.JSONResponse(http.StatusOK, json.RawMessage(o.Canonical()), nil))
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
