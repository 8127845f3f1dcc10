// Package httpshed holds what the HTTP functions share: reading the route keys, and
// turning a classified store error into the answer a caller can act on, 429 or 503 with
// Retry-After when the store is saturated, within milliseconds rather than at a timeout.
package httpshed

import (
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Reply wraps an HTTP output as the function's response.
func Reply(r invocation.HTTPResponse) *invocation.Response {
	return &invocation.Response{Outputs: map[string]any{"res": r}}
}

// Keys reads and validates the {customerId} and {id} route parameters.
func Keys(req *invocation.HTTPRequest) (customerID, id string, p *invocation.Problem) {
	customerID, id = req.Params["customerId"], req.Params["id"]
	if err := order.CheckKey(customerID); err != nil {
		return "", "", &invocation.Problem{Status: http.StatusBadRequest, Field: "customerId", Detail: "customerId " + err.Error()}
	}
	if err := order.CheckKey(id); err != nil {
		return "", "", &invocation.Problem{Status: http.StatusBadRequest, Field: "id", Detail: "id " + err.Error()}
	}
	return customerID, id, nil
}

// FromError renders a store error: shed calls become 429 (this instance is at its limit)
// or 503 (the store is failing), both with Retry-After; permanent refusals become 4xx.
func FromError(inv *invocation.Invocation, err error) invocation.HTTPResponse {
	e, ok := resilience.AsError(err)
	if !ok {
		e = &resilience.Error{Kind: resilience.Transient, Reason: "unclassified", Err: err}
	}
	switch e.Kind {
	case resilience.Rejected:
		status := http.StatusTooManyRequests
		if e.Reason == resilience.ReasonCircuitOpen {
			status = http.StatusServiceUnavailable
		}
		inv.Logger.Info("request shed", "outcome", "shed", "reason", e.Reason, "retry_after_ms", e.RetryAfter.Milliseconds())
		return invocation.Shed(status, e.RetryAfter, "the order store is saturated ("+e.Reason+"); retry later")
	case resilience.Permanent:
		status := http.StatusBadRequest
		if e.Status == http.StatusRequestEntityTooLarge || e.Reason == "item-too-large" {
			status = http.StatusRequestEntityTooLarge
		}
		inv.Logger.Warn("store refused the request", "outcome", "refused", "reason", e.Reason, "err", err)
		return invocation.ProblemResponse(invocation.Problem{Status: status, Detail: "the order store refused the request: " + e.Reason})
	default:
		retryAfter := e.RetryAfter
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		inv.Logger.Warn("store unavailable", "outcome", "unavailable", "reason", e.Reason, "err", err)
		return invocation.Shed(http.StatusServiceUnavailable, retryAfter, "the order store is unavailable ("+e.Reason+"); retry later")
	}
}
