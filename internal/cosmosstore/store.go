// Package cosmosstore keeps orders in a Cosmos DB container, partitioned by /customerId,
// behind the resilience policies. It classifies every answer from Cosmos DB into the three
// kinds callers act on: permanent, transient, or shed.
package cosmosstore

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
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// MaxItemBytes is Cosmos DB's limit on the size of one item.
const MaxItemBytes = 2 << 20

// HashField is the member of a stored item holding order.Order.Hash.
const HashField = order.ReservedHashField

// Store reads and writes orders.
type Store struct {
	cfg       config.CosmosConfig
	client    *azcosmos.Client
	container *azcosmos.ContainerClient
	writes    *resilience.Dependency
	reads     *resilience.Dependency
	logger    *slog.Logger
	ready     chan struct{}
}

// New builds the client and policies. It dials nothing: the Functions host gives the
// handler 30 seconds to open its port, and a slow store must not eat into them. When
// cfg.CreateIfMissing is set, call Init in the background to create the database and
// container; operations wait for it.
func New(cfg config.CosmosConfig, logger *slog.Logger) (*Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("COSMOS_ENDPOINT: %w", err)
	}
	local := config.IsLoopbackHost(u.Hostname())

	opts := &azcosmos.ClientOptions{}
	// Exactly one layer retries each failure. 429: the throttle retry policy in
	// resilience, which shares the server's hint with the pacer, so 429 is not in
	// StatusCodes. Reads' transport errors, 408 and 5xx: azcosmos's own client retry
	// policy, then azcore's. Writes' transient failures: azcosmos marks them
	// non-retriable for azcore (a write may not be safe to repeat), so the writes
	// dependency retries them, which is safe because Create checks conflicts and Upsert
	// replaces. Every try is bounded by TryTimeout.
	opts.Retry = policy.RetryOptions{
		MaxRetries:    int32(cfg.SDKMaxRetries),
		RetryDelay:    cfg.SDKRetryDelay,
		MaxRetryDelay: cfg.SDKMaxRetryDelay,
		TryTimeout:    cfg.SDKTryTimeout,
		StatusCodes:   []int{http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
	}
	if cfg.SDKMaxRetries == 0 {
		opts.Retry.MaxRetries = -1 // azcore reads 0 as "use the default of 3"
	}
	if local {
		// The local emulator (and the stand-in used in tests) serves a self-signed
		// certificate and advertises its own address in the account metadata, which is
		// wrong whenever its port is remapped or a proxy sits in front of it. Both
		// allowances apply only to a loopback endpoint, never to a real account.
		opts.Transport = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback emulator only
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		}}
		opts.PerRetryPolicies = append(opts.PerRetryPolicies, pinHost{host: u.Host})
	}

	var client *azcosmos.Client
	switch {
	case cfg.Key != "":
		cred, err := azcosmos.NewKeyCredential(cfg.Key)
		if err != nil {
			return nil, errors.New("COSMOS_KEY is not a valid account key")
		}
		client, err = azcosmos.NewClientWithKey(cfg.Endpoint, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("cosmos client: %w", err)
		}
	default:
		var cred azcore.TokenCredential
		if cfg.ClientID != "" {
			cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(cfg.ClientID)})
		} else {
			cred, err = azidentity.NewDefaultAzureCredential(nil)
		}
		if err != nil {
			return nil, fmt.Errorf("cosmos credential: %w", err)
		}
		client, err = azcosmos.NewClient(cfg.Endpoint, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("cosmos client: %w", err)
		}
	}
	container, err := client.NewContainer(cfg.Database, cfg.Container)
	if err != nil {
		return nil, fmt.Errorf("cosmos container: %w", err)
	}

	s := &Store{cfg: cfg, client: client, container: container, logger: logger, ready: make(chan struct{})}
	pacer := resilience.NewPacer(resilience.PacerOptions{
		Initial: cfg.WriteRateInitial, Min: cfg.WriteRateMin, Max: cfg.WriteRateMax, Growth: cfg.WriteRateGrowth,
	})
	s.writes = resilience.NewDependency(resilience.DependencyOptions{
		Name: "cosmos-writes", Logger: logger, OperationTimeout: cfg.OperationTimeout,
		ThrottleMaxRetries: cfg.ThrottleMaxRetries, ThrottleMaxWait: cfg.ThrottleMaxWait,
		TransientMaxRetries: cfg.WriteMaxRetries, TransientBackoff: cfg.SDKRetryDelay, TransientBackoffMax: cfg.SDKMaxRetryDelay,
		MaxConcurrency: cfg.MaxConcurrency, Breaker: cfg.Breaker, Pacer: pacer, Classify: s.classify,
	})
	s.reads = resilience.NewDependency(resilience.DependencyOptions{
		Name: "cosmos-reads", Logger: logger, OperationTimeout: cfg.OperationTimeout,
		ThrottleMaxRetries: cfg.ThrottleMaxRetries, ThrottleMaxWait: cfg.ThrottleMaxWait,
		MaxConcurrency: cfg.MaxConcurrency, Breaker: cfg.Breaker, Classify: s.classify,
	})
	if !cfg.CreateIfMissing {
		close(s.ready)
	}
	return s, nil
}

// pinHost sends every request to the configured emulator address, whatever the account
// metadata advertised.
type pinHost struct{ host string }

func (p pinHost) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	raw.URL.Host = p.host
	raw.Host = p.host
	return req.Next()
}

// Init creates the database and container when they are missing, retrying until ctx
// ends; it is for the local emulator, where nothing provisions them.
func (s *Store) Init(ctx context.Context) {
	if !s.cfg.CreateIfMissing {
		return
	}
	delay := 200 * time.Millisecond
	for {
		err := s.create(ctx)
		if err == nil {
			s.logger.Info("cosmos container ready", "database", s.cfg.Database, "container", s.cfg.Container)
			close(s.ready)
			return
		}
		s.logger.Warn("creating cosmos database and container", "err", err, "retry_in_ms", delay.Milliseconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (s *Store) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.client.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: s.cfg.Database}, nil)
	if err != nil && statusOf(err) != http.StatusConflict {
		return fmt.Errorf("create database: %w", err)
	}
	db, err := s.client.NewDatabase(s.cfg.Database)
	if err != nil {
		return err
	}
	_, err = db.CreateContainer(ctx, azcosmos.ContainerProperties{
		ID:                     s.cfg.Container,
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/customerId"}},
	}, nil)
	if err != nil && statusOf(err) != http.StatusConflict {
		return fmt.Errorf("create container: %w", err)
	}
	return nil
}

func (s *Store) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return &resilience.Error{Kind: resilience.Transient, Reason: "store-initialising", RetryAfter: time.Second, Err: ctx.Err()}
	}
}

// Document is the item stored for an order: the order's members plus its content hash.
func Document(o *order.Order) ([]byte, error) {
	m := make(map[string]json.RawMessage, len(o.Fields)+1)
	for k, v := range o.Fields {
		m[k] = v
	}
	m[HashField], _ = json.Marshal(o.Hash())
	return json.Marshal(m)
}

// Result says what a write did.
type Result int

const (
	Written   Result = iota + 1
	Duplicate        // the same order was already stored; nothing changed
)

// Create stores o once. A second Create of the same order finds it stored (409), reads
// it, and reports Duplicate when the content hash matches; a different order under the
// same id is a permanent conflict, never an overwrite. This is what makes queue
// redelivery safe: a message whose first invocation wrote the item and then timed out
// changes nothing the second time.
func (s *Store) Create(ctx context.Context, o *order.Order, co resilience.CallOptions) (Result, error) {
	doc, err := Document(o)
	if err != nil {
		return 0, &resilience.Error{Kind: resilience.Permanent, Reason: "unencodable-order", Err: err}
	}
	if len(doc) > MaxItemBytes {
		return 0, &resilience.Error{Kind: resilience.Permanent, Reason: "item-too-large", Err: fmt.Errorf("item is %d bytes, over Cosmos DB's %d", len(doc), MaxItemBytes)}
	}
	if err := s.waitReady(ctx); err != nil {
		return 0, err
	}
	// The partition key always comes from the item itself, so the two cannot disagree.
	pk := azcosmos.NewPartitionKeyString(o.CustomerID)
	co.Paced = true
	// A conflict is the store answering, not failing: the item exists, and whether it is
	// this order is settled below. Counting it as a failure would skew the breaker and
	// the health counts on every redelivery.
	conflict := false
	err = s.writes.Do(ctx, co, func(ctx context.Context) error {
		_, err := s.container.CreateItem(ctx, pk, doc, nil)
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusConflict {
			conflict = true
			return nil
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	if !conflict {
		return Written, nil
	}
	stored, found, err := s.Read(ctx, o.CustomerID, o.ID, resilience.CallOptions{MaxWait: co.MaxWait})
	if err != nil {
		return 0, err
	}
	if !found {
		// Deleted between the conflict and the read: try again later.
		return 0, &resilience.Error{Kind: resilience.Transient, Reason: "conflict-then-missing", RetryAfter: time.Second}
	}
	var h struct {
		Hash string `json:"contentHash"`
	}
	_ = json.Unmarshal(stored, &h)
	if h.Hash == o.Hash() {
		return Duplicate, nil
	}
	return 0, &resilience.Error{Kind: resilience.Permanent, Reason: "id-conflict", Status: http.StatusConflict,
		Err: errors.New("another order with this id and customerId is stored with different content")}
}

// Upsert stores o, replacing any order under the same id.
func (s *Store) Upsert(ctx context.Context, o *order.Order, co resilience.CallOptions) error {
	doc, err := Document(o)
	if err != nil {
		return &resilience.Error{Kind: resilience.Permanent, Reason: "unencodable-order", Err: err}
	}
	if len(doc) > MaxItemBytes {
		return &resilience.Error{Kind: resilience.Permanent, Reason: "item-too-large", Err: fmt.Errorf("item is %d bytes, over Cosmos DB's %d", len(doc), MaxItemBytes)}
	}
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	pk := azcosmos.NewPartitionKeyString(o.CustomerID)
	co.Paced = true
	return s.writes.Do(ctx, co, func(ctx context.Context) error {
		_, err := s.container.UpsertItem(ctx, pk, doc, nil)
		return err
	})
}

// Read returns the stored item's JSON, or found == false.
func (s *Store) Read(ctx context.Context, customerID, id string, co resilience.CallOptions) (item []byte, found bool, err error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, false, err
	}
	err = s.reads.Do(ctx, co, func(ctx context.Context) error {
		resp, err := s.container.ReadItem(ctx, azcosmos.NewPartitionKeyString(customerID), id, nil)
		if err != nil {
			return err
		}
		item = resp.Value
		return nil
	})
	if e, ok := resilience.AsError(err); ok && e.Status == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return item, true, nil
}

// PublicOrder strips what the store added (system properties and the content hash) from
// an item.
func PublicOrder(item []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(item, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if len(k) > 0 && k[0] == '_' {
			delete(m, k)
		}
	}
	delete(m, HashField)
	return m, nil
}

// Writes and Reads expose the policies, for shedding decisions and the health report.
func (s *Store) Writes() *resilience.Dependency { return s.writes }
func (s *Store) Reads() *resilience.Dependency  { return s.reads }

// classify maps an error from azcosmos to a resilience.Error.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.DeadlineExceeded) {
			// azcore's per-try timeout, or the caller's deadline; the caller can tell
			// them apart by its own context.
			return &resilience.Error{Kind: resilience.Transient, Reason: "cosmos-timeout", Err: err}
		}
		return &resilience.Error{Kind: resilience.Transient, Reason: "cosmos-unreachable", Err: err}
	}
	e := &resilience.Error{Status: re.StatusCode, Err: err}
	if re.RawResponse != nil {
		e.SubStatus, _ = strconv.Atoi(re.RawResponse.Header.Get("x-ms-substatus"))
	}
	switch {
	case re.StatusCode == http.StatusTooManyRequests:
		e.Kind, e.Reason = resilience.Transient, resilience.ReasonThrottled
		if re.RawResponse != nil {
			hint, ok, warning := resilience.ParseHint(re.RawResponse.Header, time.Now())
			if warning != "" {
				s.logger.Warn("cosmos throttle hint unusable", "detail", warning)
			}
			if ok {
				e.RetryAfter, e.Hinted = hint.Delay, true
			}
		}
	case re.StatusCode == http.StatusNotFound, re.StatusCode == http.StatusConflict, re.StatusCode == http.StatusPreconditionFailed:
		// Answers callers handle themselves; not failures of the store.
		e.Kind, e.Reason = resilience.Permanent, fmt.Sprintf("cosmos-%d", re.StatusCode)
	case re.StatusCode == http.StatusBadRequest, re.StatusCode == http.StatusRequestEntityTooLarge:
		e.Kind, e.Reason = resilience.Permanent, fmt.Sprintf("cosmos-%d", re.StatusCode)
		if e.SubStatus != 0 {
			e.Reason += "-" + strconv.Itoa(e.SubStatus)
		}
	case re.StatusCode == http.StatusUnauthorized, re.StatusCode == http.StatusForbidden:
		// Usually a role assignment that has not propagated yet, or a key being rotated:
		// worth retrying later, not worth poisoning an order over.
		e.Kind, e.Reason = resilience.Transient, fmt.Sprintf("cosmos-%d", re.StatusCode)
	default:
		e.Kind, e.Reason = resilience.Transient, fmt.Sprintf("cosmos-%d", re.StatusCode)
	}
	return e
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
