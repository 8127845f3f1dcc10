// Package health reports the state of every policy, for operators: circuit states and
// their remaining delays, limiter permits and pace, and counts of throttled attempts,
// retries and shed requests since the instance started.
package health

import (
	"context"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/functions/httpshed"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// Name is the function's folder; the host calls POST /health.
const Name = "health"

// Function reports health.
type Function struct {
	Dependencies []*resilience.Dependency
	Started      time.Time
}

// Registration binds the function to its folder.
func Registration(f *Function) invocation.Registration {
	return invocation.Registration{Name: Name, Trigger: invocation.HTTPTrigger, HTTPOutput: "res", Func: f}
}

// Report is the health document.
type Report struct {
	Status        string             `json:"status"`
	UptimeSeconds int64              `json:"uptimeSeconds"`
	Dependencies  []resilience.State `json:"dependencies"`
}

// Invoke answers GET /api/health. It always answers 200: a degraded dependency is news
// for the operator, not a reason for a load balancer to pull this instance.
func (f *Function) Invoke(_ context.Context, _ *invocation.Invocation) (*invocation.Response, error) {
	r := Report{Status: "ok", UptimeSeconds: int64(time.Since(f.Started).Seconds())}
	for _, d := range f.Dependencies {
		s := d.State()
		if s.Breaker.State != "closed" {
			r.Status = "degraded"
		}
		r.Dependencies = append(r.Dependencies, s)
	}
	return httpshed.Reply(invocation.JSONResponse(http.StatusOK, r, map[string]string{"Cache-Control": "no-store"})), nil
}
