// Package fulfilment is the client of the third-party fulfilment API that notify calls.
// The API rate-limits with 429 and a Retry-After given in seconds or as an HTTP date;
// failsafehttp reads only whole seconds, so this client parses the header itself.
package fulfilment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/resilience"
)

// Request asks the API to fulfil an order.
type Request struct {
	OrderID    string `json:"orderId"`
	CustomerID string `json:"customerId"`
}

// Client calls the API through a resilience.Dependency.
type Client struct {
	base   string
	http   *http.Client
	dep    *resilience.Dependency
	logger *slog.Logger
	// attemptTimeout bounds one HTTP exchange.
	attemptTimeout time.Duration
}

// Options configures a Client.
type Options struct {
	BaseURL        string
	HTTPClient     *http.Client
	Dependency     *resilience.Dependency
	Logger         *slog.Logger
	AttemptTimeout time.Duration
}

// New returns a Client.
func New(o Options) *Client {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Client{base: strings.TrimSuffix(o.BaseURL, "/"), http: o.HTTPClient, dep: o.Dependency, logger: o.Logger, attemptTimeout: o.AttemptTimeout}
}

// Fulfil sends r. The order id is the idempotency key, so a retry after a lost answer,
// or a redelivered message, asks for one fulfilment only.
func (c *Client) Fulfil(ctx context.Context, r Request, co resilience.CallOptions, logger *slog.Logger) error {
	body, err := json.Marshal(r)
	if err != nil {
		return &resilience.Error{Kind: resilience.Permanent, Reason: "unencodable-request", Err: err}
	}
	warned := false
	return c.dep.Do(ctx, co, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/fulfilments", bytes.NewReader(body))
		if err != nil {
			return &resilience.Error{Kind: resilience.Permanent, Reason: "bad-request-url", Err: err}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", r.OrderID)
		resp, err := c.http.Do(req)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				return &resilience.Error{Kind: resilience.Transient, Reason: "fulfilment-timeout", Err: err}
			}
			return &resilience.Error{Kind: resilience.Transient, Reason: "fulfilment-unreachable", Err: err}
		}
		// Drain a bounded amount so the connection goes back to the pool, then close.
		defer func() {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}()
		return c.classify(resp, &warned, logger)
	})
}

func (c *Client) classify(resp *http.Response, warned *bool, logger *slog.Logger) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300, code == http.StatusConflict:
		// 409: the API already holds a fulfilment under this idempotency key.
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		e := &resilience.Error{Kind: resilience.Transient, Reason: fmt.Sprintf("fulfilment-%d", code), Status: code}
		hint, ok, warning := resilience.ParseHint(resp.Header, time.Now())
		if warning != "" && !*warned {
			*warned = true
			logger.Warn("fulfilment API sent an unusable wait hint; backing off instead", "detail", warning)
		}
		if code == http.StatusTooManyRequests || ok {
			e.Reason = resilience.ReasonThrottled
		}
		if ok {
			e.RetryAfter, e.Hinted = hint.Delay, true
		}
		return e
	case code == http.StatusRequestTimeout || code >= 500:
		return &resilience.Error{Kind: resilience.Transient, Reason: fmt.Sprintf("fulfilment-%d", code), Status: code}
	default:
		return &resilience.Error{Kind: resilience.Permanent, Reason: fmt.Sprintf("fulfilment-%d", code), Status: code}
	}
}

// Dependency exposes the policies for the health report.
func (c *Client) Dependency() *resilience.Dependency { return c.dep }
