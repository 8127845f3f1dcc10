package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-dev/sluice/functions/health"
	"github.com/sluice-dev/sluice/functions/ingest"
	"github.com/sluice-dev/sluice/functions/notify"
	"github.com/sluice-dev/sluice/functions/process"
	"github.com/sluice-dev/sluice/functions/read"
	"github.com/sluice-dev/sluice/functions/write"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/cosmosstore"
	"github.com/sluice-dev/sluice/internal/fulfilment"
	"github.com/sluice-dev/sluice/internal/invocation"
	"github.com/sluice-dev/sluice/internal/queues"
	"github.com/sluice-dev/sluice/internal/redelivery"
	"github.com/sluice-dev/sluice/internal/resilience"
)

// app holds the shared dependencies and the list of functions. To add a function, write
// its package under functions/, its function.json in a folder of the same name at the
// repository root, and one entry in registrations below (with its import);
// `go run ./cmd/newfunction` writes all three.
type app struct {
	registrations []invocation.Registration
	store         *cosmosstore.Store
}

func newApp(cfg *config.Config, logger *slog.Logger) (*app, error) {
	store, err := cosmosstore.New(cfg.Cosmos, logger)
	if err != nil {
		return nil, err
	}
	q, err := queues.New(queues.Options{
		ConnectionString: cfg.Storage.ConnectionString,
		ServiceURL:       cfg.Storage.QueueServiceURL,
		ClientID:         cfg.Storage.ClientID,
	})
	if err != nil {
		return nil, err
	}
	queueWait := resilience.CallOptions{MaxWait: cfg.Cosmos.QueueWait}
	httpWait := resilience.CallOptions{MaxWait: cfg.HTTPShedMaxWait}
	deps := []*resilience.Dependency{store.Writes(), store.Reads()}

	var notifyFn *notify.Function
	if cfg.FulfilmentURL != "" {
		fc := cfg.Fulfilment
		dep := resilience.NewDependency(resilience.DependencyOptions{
			Name: "fulfilment-api", Logger: logger,
			OperationTimeout:   cfg.FunctionTimeout - cfg.SafetyMargin,
			ThrottleMaxRetries: fc.MaxRetries, ThrottleMaxWait: fc.MaxWait,
			ThrottleBackoff: 500 * time.Millisecond, ThrottleBackoffMax: 10 * time.Second,
			MaxConcurrency: fc.MaxConcurrency, Breaker: fc.Breaker,
		})
		deps = append(deps, dep)
		notifyFn = &notify.Function{
			Client:    fulfilment.New(fulfilment.Options{BaseURL: cfg.FulfilmentURL, Dependency: dep, Logger: logger, AttemptTimeout: fc.AttemptTimeout}),
			Queue:     &redelivery.Queue{Name: cfg.NotifyQueue, Client: q, Config: cfg.Requeue},
			QueueWait: queueWait,
		}
	} else {
		logger.Warn("FULFILMENT_API_URL is not set: stored orders are not sent on for fulfilment")
	}

	a := &app{store: store}
	a.registrations = []invocation.Registration{
		ingest.Registration(&ingest.Function{MaxBodyBytes: cfg.HTTPMaxBodyBytes}),
		process.Registration(&process.Function{
			Store:     store,
			Queue:     &redelivery.Queue{Name: cfg.OrdersQueue, Client: q, Config: cfg.Requeue},
			QueueWait: queueWait,
			Notify:    notifyFn != nil,
		}),
		read.Registration(&read.Function{Store: store, Wait: httpWait}),
		write.Registration(&write.Function{Store: store, MaxBodyBytes: cfg.HTTPMaxBodyBytes, Wait: httpWait}),
		health.Registration(&health.Function{Dependencies: deps, Started: time.Now()}),
		// New functions are added above this line.
	}
	if notifyFn != nil {
		a.registrations = append(a.registrations, notify.Registration(notifyFn))
	}
	return a, nil
}

// start prepares dependencies after the port is open.
func (a *app) start(ctx context.Context) {
	a.store.Init(ctx)
}
