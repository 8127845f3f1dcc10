// Command handler is Sluice's custom handler: the HTTP server the Azure Functions host
// starts and sends every invocation to. It listens on 127.0.0.1 at
// FUNCTIONS_CUSTOMHANDLER_PORT, answers the host's readiness probe before it dials any
// dependency, and on SIGTERM stops taking invocations and lets the ones in flight finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/invocation"
)

func main() {
	if err := run(); err != nil {
		// stderr reaches the host's log as an error line.
		fmt.Fprintln(os.Stderr, "handler:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger := newLogger(cfg.LogLevel)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	app, err := newApp(cfg, logger)
	if err != nil {
		return err
	}
	srv, err := invocation.NewServer(invocation.ServerOptions{
		Logger:          logger,
		FunctionTimeout: cfg.FunctionTimeout,
		SafetyMargin:    cfg.SafetyMargin,
		// The envelope carries the HTTP body as a JSON string, where escaping can double
		// it, or as base64.
		MaxEnvelopeBytes: 2*cfg.HTTPMaxBodyBytes + 1<<20,
	}, app.registrations...)
	if err != nil {
		return err
	}

	// Loopback only: the host is the one caller, and it always dials 127.0.0.1.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT: %w", err)
	}
	// baseCtx ends shutdownGrace after SIGTERM, so that invocations still waiting on a
	// pacer or a retry stop waiting and defer their messages before the host kills us.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	logger.Info("handler listening", "addr", ln.Addr().String(), "functions", len(app.registrations),
		"function_timeout", cfg.FunctionTimeout.String())

	// Dependencies are prepared only now, after the port is open.
	go app.start(ctx)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight invocations", "grace", shutdownGrace.String())
	// A fresh context: the signal's is already done.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	timer := time.AfterFunc(shutdownGrace/2, cancelBase)
	defer timer.Stop()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("handler stopped")
	return nil
}

// shutdownGrace is how long in-flight invocations get after SIGTERM. The Functions host
// waits for running invocations when it drains an instance, and the platform gives a
// worker some seconds after SIGTERM before it kills it; half of this is spent waiting
// normally and the rest winding down (deferring what is left).
const shutdownGrace = 20 * time.Second

// newLogger writes JSON lines: errors to stderr, which the host logs at Error level, the
// rest to stdout, which it logs at Information.
func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	return slog.New(splitHandler{
		out: slog.NewJSONHandler(os.Stdout, opts),
		err: slog.NewJSONHandler(os.Stderr, opts),
	})
}

type splitHandler struct{ out, err slog.Handler }

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.out.Enabled(ctx, l) }

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.err.Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return splitHandler{out: h.out.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h splitHandler) WithGroup(name string) slog.Handler {
	return splitHandler{out: h.out.WithGroup(name), err: h.err.WithGroup(name)}
}
