package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/cosmosstandin"
)

// goBench is one line of `go test -bench` output.
type goBench struct {
	Name string
	// NsPerOp is wall-clock time per invocation; CPUNsPerOp, the process's CPU time per
	// invocation, which other work on the machine does not inflate.
	NsPerOp, CPUNsPerOp float64
	BytesPerOp          int64
	AllocsPerOp         int64
}

// PerSecond is invocations per second on one core, from CPU time when it was measured.
func (b goBench) PerSecond() float64 {
	if b.CPUNsPerOp > 0 {
		return 1e9 / b.CPUNsPerOp
	}
	return 1e9 / b.NsPerOp
}

// overheadResult is what P4 measured, with the stand-ins' own capacities beside it.
type overheadResult struct {
	Bench    []goBench
	BenchCmd string
	// FirstAnswer holds, per start of the handler, the time from starting the process
	// to its first answer on GET /.
	FirstAnswer []time.Duration
	// IdleRSS is the handler's resident memory after IdleFor without work.
	IdleRSS int64
	IdleFor time.Duration

	// StandinUpserts is what the Cosmos stand-in sustains with nothing in front of it.
	StandinUpserts float64
	// AzuriteDelete is the mean time of one delete with the queue at each depth.
	AzuriteDelete map[int]time.Duration
}

const (
	startRuns = 5
	idleFor   = 3 * time.Second
)

// benchLine matches `BenchmarkX-1   123   456.7 ns/op   89 B/op   10 allocs/op`.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:.*?\s(\d+) B/op)?(?:.*?\s(\d+) allocs/op)?`)

// runOverhead measures the Go benchmarks, the handler's start and idle memory, and the
// stand-ins' capacities.
func runOverhead(ctx context.Context, root, tmp string, progress io.Writer) (*overheadResult, error) {
	res := &overheadResult{IdleFor: idleFor, AzuriteDelete: map[int]time.Duration{}}
	fmt.Fprintln(progress, "  P4 go test -bench (one core)")
	var err error
	if res.Bench, res.BenchCmd, err = runGoBench(ctx, root, tmp); err != nil {
		return nil, err
	}

	az, err := azurite.Start(ctx, azurite.Options{RepoRoot: root})
	if err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	defer az.Close()
	cosmos, err := cosmosstandin.Start(ctx, cosmosstandin.Options{RepoRoot: root})
	if err != nil {
		return nil, fmt.Errorf("cosmos stand-in: %w", err)
	}
	defer cosmos.Close()

	settings, err := sampleSettings(root)
	if err != nil {
		return nil, err
	}
	settings["AzureWebJobsStorage"] = az.ConnectionString
	settings["COSMOS_ENDPOINT"] = cosmos.Endpoint
	settings["COSMOS_KEY"] = cosmosstandin.EmulatorKey
	settings["FUNCTIONS_APP_ROOT_PATH"] = root
	for i := range startRuns {
		last := i == startRuns-1
		ttfa, rss, err := startHandler(ctx, root, settings, last)
		if err != nil {
			return nil, err
		}
		res.FirstAnswer = append(res.FirstAnswer, ttfa)
		if last {
			res.IdleRSS = rss
		}
		fmt.Fprintf(progress, "  P4 handler start %d: first answer after %v\n", i+1, ttfa.Round(10*time.Microsecond))
	}

	fmt.Fprintln(progress, "  P4 stand-in capacities")
	if res.StandinUpserts, err = standinUpserts(ctx, cosmos, 3*time.Second); err != nil {
		return nil, fmt.Errorf("measuring the Cosmos stand-in: %w", err)
	}
	if err := azuriteDeletes(ctx, az, res.AzuriteDelete); err != nil {
		return nil, fmt.Errorf("measuring Azurite: %w", err)
	}
	return res, nil
}

// benchIterations is how many invocations each Go benchmark runs: a fixed count, so
// the process's CPU time divided by it is the cost of one invocation on one core
// whatever else the machine is doing, beside the wall-clock figure go test prints.
const benchIterations = 30000

// goBenchNames are the invocation benchmarks P4 runs.
var goBenchNames = []string{"BenchmarkDecodeDispatchEncode", "BenchmarkDecodeDispatchEncodeNoHTTP"}

// runGoBench builds internal/invocation's test binary and runs each benchmark on one
// core (GOMAXPROCS 1, so the garbage collector shares the core it measures instead of
// borrowing the other one) for benchIterations invocations.
func runGoBench(ctx context.Context, root, dir string) ([]goBench, string, error) {
	bin := filepath.Join(dir, "invocation.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./internal/invocation")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("go test -c ./internal/invocation: %v\n%s", err, out)
	}
	var benches []goBench
	for _, name := range goBenchNames {
		args := []string{"-test.run", "^$", "-test.bench", "^" + name + "$", "-test.benchtime", strconv.Itoa(benchIterations) + "x",
			"-test.benchmem", "-test.cpu", "1"}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = filepath.Join(root, "internal", "invocation")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		b, ok := parseBench(out)
		if !ok {
			return nil, "", fmt.Errorf("%s printed no result:\n%s", name, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			// The benchmark runs once with b.N = 1 before the measured run.
			b.CPUNsPerOp = float64(cpu.Nanoseconds()) / float64(benchIterations+1)
		}
		benches = append(benches, b)
	}
	return benches, "go test -c ./internal/invocation, then each benchmark with -test.benchtime " +
		strconv.Itoa(benchIterations) + "x -test.cpu 1", nil
}

// parseBench reads the result line of one benchmark.
func parseBench(out []byte) (goBench, bool) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		b := goBench{Name: m[1]}
		b.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
		b.BytesPerOp, _ = strconv.ParseInt(m[3], 10, 64)
		b.AllocsPerOp, _ = strconv.ParseInt(m[4], 10, 64)
		return b, true
	}
	return goBench{}, false
}

// startHandler starts bin/handler as the host would and polls GET / every millisecond
// until it answers. With measureRSS it then leaves the handler idle for idleFor and
// reads its resident memory. The handler is stopped before it returns.
func startHandler(ctx context.Context, root string, settings map[string]string, measureRSS bool) (time.Duration, int64, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", "handler"))
	cmd.Dir = root
	cmd.Env = os.Environ()
	for k, v := range settings {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	probe := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()

	var ttfa time.Duration
	for ttfa == 0 {
		if resp, err := probe.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ttfa = time.Since(start)
				break
			}
		}
		select {
		case <-exited:
			return 0, 0, fmt.Errorf("the handler exited before it answered: %s", stderr.String())
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > 10*time.Second {
			return 0, 0, errors.New("the handler did not answer GET / within 10 s")
		}
	}
	if !measureRSS {
		return ttfa, 0, nil
	}
	select {
	case <-time.After(idleFor):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	rss, err := residentBytes(cmd.Process.Pid)
	return ttfa, rss, err
}

// residentBytes reads VmRSS from /proc/<pid>/status.
func residentBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// standinUpserts upserts from 32 writers for d, straight to the stand-in, and returns
// the rate it sustained.
func standinUpserts(ctx context.Context, s *cosmosstandin.Server, d time.Duration) (float64, error) {
	cred, err := azcosmos.NewKeyCredential(cosmosstandin.EmulatorKey)
	if err != nil {
		return 0, err
	}
	client, err := azcosmos.NewClientWithKey(s.Endpoint, cred, &azcosmos.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: s.HTTPClient()},
	})
	if err != nil {
		return 0, err
	}
	if _, err := client.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: "calibration"}, nil); err != nil {
		return 0, err
	}
	db, err := client.NewDatabase("calibration")
	if err != nil {
		return 0, err
	}
	if _, err := db.CreateContainer(ctx, azcosmos.ContainerProperties{ID: "items",
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/customerId"}}}, nil); err != nil {
		return 0, err
	}
	container, err := db.NewContainer("items")
	if err != nil {
		return 0, err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		firstErr error
	)
	start := time.Now()
	for w := range 32 {
		wg.Go(func() {
			for i := 0; time.Since(start) < d; i++ {
				customer, id := orderKey(fmt.Sprintf("cal-%02d", w), i)
				_, err := container.UpsertItem(ctx, azcosmos.NewPartitionKeyString(customer), []byte(orderJSON(customer, id)), nil)
				mu.Lock()
				if err != nil {
					firstErr = cmp.Or(firstErr, err)
				} else {
					done++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done) / time.Since(start).Seconds(), nil
}

// azuriteDeletes times Azurite's delete of a received message with 300 and then 3,000
// messages on the queue, the cost that makes a deep queue its bottleneck (see feeder).
func azuriteDeletes(ctx context.Context, az *azurite.Server, out map[int]time.Duration) error {
	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		return err
	}
	q := svc.NewQueueClient("calibration")
	if _, err := q.Create(ctx, nil); err != nil {
		return err
	}
	queued := 0
	for _, depth := range []int{300, 3000} {
		if err := fill(ctx, q, depth-queued); err != nil {
			return err
		}
		n := int32(32)
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n})
		if err != nil {
			return err
		}
		start := time.Now()
		for _, m := range resp.Messages {
			if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
				return err
			}
		}
		out[depth] = time.Since(start) / time.Duration(max(len(resp.Messages), 1))
		queued = depth - len(resp.Messages)
	}
	return nil
}

// fill enqueues n messages, 16 at a time.
func fill(ctx context.Context, q *azqueue.QueueClient, n int) error {
	return parallel(0, n, func(i int) error {
		_, err := q.EnqueueMessage(ctx, fmt.Sprintf("calibration message %d", i), nil)
		return err
	})
}
