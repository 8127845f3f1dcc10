// Command local runs Sluice on this machine the way `func start` does: it starts the
// local stand-ins the settings point at (Azurite, the Cosmos DB stand-in, the fake
// fulfilment API) unless something already listens there, then serves the app on
// localhost:7071, through `func start` when Azure Functions Core Tools is installed and
// through the project's imitation of the Functions host otherwise. Ctrl-C stops everything
// it started.
//
// Settings come from local.settings.json, or from local.settings.sample.json when there is
// none yet (it is copied, so `func start` finds it too).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/cosmosstandin"
	"github.com/sluice-dev/sluice/test/fulfilmentfake"
	"github.com/sluice-dev/sluice/test/funchost"
	"github.com/sluice-dev/sluice/test/stack"
)

func main() {
	port := flag.Int("port", 7071, "port for the HTTP functions, as func start's --port")
	noFunc := flag.Bool("imitation", false, "use the host imitation even when func is installed")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*port, *noFunc, logger); err != nil {
		logger.Error("local run failed", "err", err)
		os.Exit(1)
	}
}

func run(port int, forceImitation bool, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	root, err := stack.RepoRoot()
	if err != nil {
		return err
	}
	settings, err := loadSettings(root, logger)
	if err != nil {
		return err
	}

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	if cs := settings["AzureWebJobsStorage"]; isDevelopmentStorage(cs) {
		if listening("127.0.0.1:10001") {
			logger.Info("Azurite already listening on 127.0.0.1:10001; using it")
		} else {
			az, err := azurite.Start(ctx, azurite.Options{RepoRoot: root, Port: 10001, Logger: logger})
			if err != nil {
				return fmt.Errorf("starting Azurite: %w", err)
			}
			closers = append(closers, func() { _ = az.Close() })
			logger.Info("started Azurite", "queue_endpoint", az.QueueEndpoint)
		}
	}
	if u, err := url.Parse(settings["COSMOS_ENDPOINT"]); err == nil && config.IsLoopbackHost(u.Hostname()) {
		addr := net.JoinHostPort("127.0.0.1", portOf(u, "443"))
		if listening(addr) {
			logger.Info("a Cosmos DB emulator already listens; using it", "endpoint", u.String())
		} else {
			p, _ := strconv.Atoi(portOf(u, "443"))
			cs, err := cosmosstandin.Start(ctx, cosmosstandin.Options{RepoRoot: root, Port: p, Logger: logger})
			if err != nil {
				return fmt.Errorf("starting the Cosmos DB stand-in: %w", err)
			}
			closers = append(closers, func() { _ = cs.Close() })
			logger.Info("started the Cosmos DB stand-in", "endpoint", cs.Endpoint)
		}
	}
	if u, err := url.Parse(settings["FULFILMENT_API_URL"]); err == nil && u.Host != "" && config.IsLoopbackHost(u.Hostname()) {
		addr := net.JoinHostPort("127.0.0.1", portOf(u, "80"))
		if !listening(addr) {
			f, err := fulfilmentfake.Start(addr)
			if err != nil {
				return fmt.Errorf("starting the fake fulfilment API: %w", err)
			}
			closers = append(closers, f.Close)
			logger.Info("started the fake fulfilment API", "url", f.URL())
		}
	}

	if fn, err := exec.LookPath("func"); err == nil && !forceImitation {
		logger.Info("serving through Azure Functions Core Tools", "func", fn)
		cmd := exec.CommandContext(ctx, fn, "start", "--port", strconv.Itoa(port))
		cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Stdin = root, os.Stdout, os.Stderr, os.Stdin
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 20 * time.Second
		if err := cmd.Run(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("func start: %w", err)
		}
		return nil
	}

	logger.Info("Azure Functions Core Tools not found; serving through the host imitation")
	h, err := funchost.Start(ctx, funchost.Options{
		ScriptRoot: root,
		HTTPAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Env:        settings,
		Logger:     logger,
		Console:    os.Stdout,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\nSluice is serving on http://localhost:%d (Ctrl-C stops it):\n", port)
	for _, r := range h.HTTPRoutes() {
		fmt.Fprintf(os.Stderr, "  %-10s %s  (%s)\n", r.Methods, r.Path, r.Function)
	}
	<-ctx.Done()
	logger.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.Stop(sctx)
}

// loadSettings reads local.settings.json's Values, creating it from the sample first if
// it does not exist.
func loadSettings(root string, logger *slog.Logger) (map[string]string, error) {
	path := filepath.Join(root, "local.settings.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(root, "local.settings.sample.json"))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
		logger.Info("created local.settings.json from local.settings.sample.json")
	} else if err != nil {
		return nil, err
	}
	var f struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("local.settings.json: %w", err)
	}
	return f.Values, nil
}

func isDevelopmentStorage(cs string) bool {
	cs = strings.ToLower(cs)
	return strings.Contains(cs, "usedevelopmentstorage=true") || strings.Contains(cs, "127.0.0.1:10001")
}

func portOf(u *url.URL, def string) string {
	if p := u.Port(); p != "" {
		return p
	}
	return def
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
