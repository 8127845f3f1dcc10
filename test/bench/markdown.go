package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// writeReport writes report.md and the charts into dir and returns the report's path.
func writeReport(dir string, r *results, rows []row) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Sluice backpressure benchmark\n\nRun %s, took %s.\n\n", r.Started.UTC().Format(time.RFC3339), r.Took.Round(time.Second))
	m := r.Machine
	fmt.Fprintf(&b, "## Machine\n\n- CPU: %s, %d logical cores (GOMAXPROCS %d)\n- Memory: %s\n- OS: %s\n- Go: %s\n",
		m.CPU, m.Cores, m.GOMAXPROCS, m.Memory, m.Kernel, m.Go)
	fmt.Fprintf(&b, "- 1-minute load average: %s at the start, %s at the end. Every part of the stack (Azurite, the Cosmos stand-in, the fault proxy, the host imitations, the handlers and the load generator) shares these cores, and so does anything else the machine was running.\n\n",
		r.LoadStart, r.LoadEnd)

	fmt.Fprintf(&b, "## Results\n\nGoals are judged on Sluice's figures; the baseline is there for comparison.\n\n")
	markdownTable(&b, rows)
	if len(r.Failures) > 0 {
		fmt.Fprintf(&b, "\n**Failed:**\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	b.WriteString(methodText)
	if len(r.Changed) > 0 {
		fmt.Fprintf(&b, "\n**Sluice's settings were changed from the sample for this run:** `%s`.\n", strings.Join(r.Changed, "`, `"))
	}

	for _, sc := range []drainScenario{p1, p2} {
		if runs, ok := r.Drains[sc.ID]; ok {
			chart, err := writeDrainChart(dir, sc, runs)
			if err != nil {
				return "", err
			}
			drainSection(&b, sc, runs, chart)
		}
	}
	if len(r.Shed) > 0 {
		chart, err := writeShedChart(dir, r.Shed)
		if err != nil {
			return "", err
		}
		shedSection(&b, r.Shed, chart)
	}
	if r.Overhead != nil {
		overheadSection(&b, r.Overhead)
	}
	path := filepath.Join(dir, "report.md")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

const methodText = `
## What runs

- **sluice**: the real ` + "`bin/handler`" + ` under the repository's host.json with the settings of
  local.settings.sample.json, tuned in nothing.
- **baseline**: test/bench/baseline, the same functions on the same invocation protocol and order
  parsing, writing each order with a plain azcosmos client on default ClientOptions (azcore's three
  retries, which honour x-ms-retry-after-ms), under a host.json with the Functions defaults: batchSize
  16, newBatchThreshold 8, maxDequeueCount 5, visibilityTimeout 0, maxPollingInterval 2 s (as in local
  development), functionTimeout 5 min, and the Consumption plan's HTTP limits (100 concurrent, 200
  outstanding), which are also what Sluice's host.json sets. A failed write fails the queue invocation,
  or answers a PUT with 503 (store throttling or unavailable) or 500, without Retry-After.
- Both run without the fulfilment API, so the cores go to the path measured; the fault proxy's token
  bucket (burst a tenth of a second's worth) is the store's capacity R, and the stand-in behind it is
  read directly, never through the proxy, to count what was stored.

How the figures are taken:

- **Drain time** runs from the store's first write attempt to the end of the last 100 ms interval in
  which it accepted a write. **Efficiency** is (stored orders / R) / drain time: the spec's (N / R) /
  drain time when every order is stored, without credit for orders a variant gave up on.
- **Throttled share** is the proxy's 429 answers over the write requests it received, retries
  included.
- **Lost** orders are neither in the container, nor in orders-poison, nor still queued; **duplicated**,
  stored more than once (read from the stand-in); **poisoned**, messages in orders-poison.
- The orders queue holds a backlog before any handler starts and is topped up as the handlers drain it
  until all N are queued, rather than holding all N at once: Azurite scans the whole queue on every
  receive and delete, so with thousands of messages it, not the store, would cap the drain (see the
  Azurite figures under P4). Each scenario reports the fewest messages the queue held while a full
  backlog of orders was still to come: above zero, the handlers never waited for work.
- **Shedding** sends PUTs open loop (each when due, whatever the earlier answers), round robin over
  the instances as a load balancer would, first unloaded, then at 4 × R; latencies are the caller's,
  through the host imitation. Shed means 429 or 503, whether the handler or the host sent it (the
  host answers 429, without Retry-After, past maxOutstandingRequests).
`

// variantTable writes the head of a table with a column per variant and returns a
// function that writes one row of it.
func variantTable[T any](w io.Writer, runs map[string]T) func(label string, cell func(T) string) {
	names := variantOrder(runs)
	fmt.Fprintf(w, "| | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	return func(label string, cell func(T) string) {
		cells := make([]string, len(names))
		for i, n := range names {
			cells[i] = cell(runs[n])
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
}

func drainSection(w io.Writer, sc drainScenario, runs map[string]*drainResult, chart string) {
	s := sc.Spec
	fmt.Fprintf(w, "\n## %s %s\n\n%s orders, capacity R = %.0f writes/s, %d handler instances, so N / R = %.1f s. Goals: efficiency ≥ %.2f, throttled ≤ %.0f %%, nothing lost, duplicated or poisoned.\n\n",
		sc.ID, sc.Title, thousands(int64(s.Orders)), s.Rate, s.Instances, float64(s.Orders)/s.Rate, sc.MinEfficiency, 100*sc.MaxThrot)
	line := variantTable(w, runs)
	line("drained", func(r *drainResult) string {
		if !r.Drained {
			return fmt.Sprintf("no: %d orders waiting after %v", r.Waiting, s.Limit)
		}
		return fmt.Sprintf("in %.1f s", r.Drain.Seconds())
	})
	line("efficiency", func(r *drainResult) string { return plain3(r.Efficiency()) })
	line("write attempts / throttled", func(r *drainResult) string {
		return fmt.Sprintf("%s / %s (%s)", thousands(r.Attempts), thousands(r.Throttled), percent(r.ThrottledShare()))
	})
	line("stored / lost / duplicated / poisoned", func(r *drainResult) string {
		return fmt.Sprintf("%s / %d / %d / %s", thousands(int64(r.Stored)), r.Lost, r.Duplicated, thousands(int64(r.Poisoned)))
	})
	line("invocations (per order) / failed", func(r *drainResult) string {
		return fmt.Sprintf("%s (%.2f) / %s", thousands(r.Invocations), float64(r.Invocations)/float64(s.Orders), thousands(r.Failures))
	})
	line("fewest messages queued while feeding", func(r *drainResult) string { return fmt.Sprint(r.MinBacklog) })
	line("first write / all instances up, after the first started", func(r *drainResult) string {
		return fmt.Sprintf("%.1f s / %.1f s", r.FirstWrite.Seconds(), r.HostsUp.Seconds())
	})
	line("load average at the end", func(r *drainResult) string { return r.Load })
	fmt.Fprintf(w, "\n![%s %s](%s)\n", sc.ID, sc.Title, chart)
}

func writeDrainChart(dir string, sc drainScenario, runs map[string]*drainResult) (string, error) {
	var panels []chartPanel
	for _, n := range variantOrder(runs) {
		r := runs[n]
		panels = append(panels, chartPanel{Title: n, Note: drainSummary(r), Series: r.Series, Width: r.BucketWidth})
	}
	name := strings.ToLower(sc.ID) + "-" + sc.Title + ".svg"
	title := fmt.Sprintf("%s %s: %s orders, %d instances", sc.ID, sc.Title, thousands(int64(sc.Spec.Orders)), sc.Spec.Instances)
	return name, os.WriteFile(filepath.Join(dir, name), []byte(renderChart(title, sc.Spec.Rate, panels)), 0o644)
}

func shedSection(w io.Writer, runs map[string]*shedResult, chart string) {
	s := p3
	fmt.Fprintf(w, "\n## P3 shedding\n\nSynchronous PUTs at %.0f/s (4 × R) for %v against R = %.0f writes/s on %d instances, after an unloaded run at %.0f/s for %v. Goals: accepted p99 within 2 × the unloaded p99, every shed answer with Retry-After and within 10 ms.\n\n",
		s.Load, s.Duration, s.Rate, s.Instances, s.IdleLoad, s.IdleDuration)
	line := variantTable(w, runs)
	for _, phase := range []struct {
		name string
		get  func(*shedResult) *loadRun
	}{{"unloaded", func(r *shedResult) *loadRun { return r.Unloaded }}, {"loaded", func(r *shedResult) *loadRun { return r.Loaded }}} {
		line(phase.name+": answers by status", func(r *shedResult) string { return statuses(phase.get(r)) })
		line(phase.name+": accepted p50 / p99 / max", func(r *shedResult) string {
			a := phase.get(r).Accepted
			return fmt.Sprintf("%s / %s / %s", ms(percentile(a, 50)), ms(percentile(a, 99)), ms(percentile(a, 100)))
		})
	}
	line("loaded: accepted per second", func(r *shedResult) string {
		return fmt.Sprintf("%.0f", float64(len(r.Loaded.Accepted))/r.Loaded.Duration.Seconds())
	})
	line("loaded: shed p50 / p99 / max", func(r *shedResult) string {
		sh := r.Loaded.Shed
		return fmt.Sprintf("%s / %s / %s", ms(percentile(sh, 50)), ms(percentile(sh, 99)), ms(percentile(sh, 100)))
	})
	line("loaded: store write attempts / throttled", func(r *shedResult) string {
		return fmt.Sprintf("%s / %s (%s)", thousands(r.Attempts), thousands(r.Throttled), percent(share(r.Throttled, r.Attempts)))
	})
	line("load average at the end", func(r *shedResult) string { return r.Load })
	fmt.Fprintf(w, "\n![P3 shedding](%s)\n", chart)
}

// statuses lists a run's answers by status, "none" for requests that got no answer.
func statuses(r *loadRun) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(r.Statuses)) {
		label := fmt.Sprint(c)
		if c == 0 {
			label = "none"
		}
		parts = append(parts, fmt.Sprintf("%s: %s", label, thousands(int64(r.Statuses[c]))))
	}
	if r.NotSent > 0 {
		parts = append(parts, "not sent: "+thousands(int64(r.NotSent)))
	}
	return strings.Join(parts, ", ")
}

func writeShedChart(dir string, runs map[string]*shedResult) (string, error) {
	var panels []chartPanel
	for _, n := range variantOrder(runs) {
		r := runs[n]
		l := r.Loaded
		note := fmt.Sprintf("%s PUTs: %s accepted (p99 %s), %s shed, %s other; %s of store attempts throttled",
			thousands(int64(l.Sent)), thousands(int64(len(l.Accepted))), ms(percentile(l.Accepted, 99)),
			thousands(int64(len(l.Shed))), thousands(int64(l.Failed)), percent(share(r.Throttled, r.Attempts)))
		panels = append(panels, chartPanel{Title: n, Note: note, Series: r.Series, Width: r.BucketWidth})
	}
	name := "p3-shedding.svg"
	title := fmt.Sprintf("P3 shedding: PUT at %.0f/s for %v, %d instances", p3.Load, p3.Duration, p3.Instances)
	return name, os.WriteFile(filepath.Join(dir, name), []byte(renderChart(title, p3.Rate, panels)), 0o644)
}

func overheadSection(w io.Writer, r *overheadResult) {
	fmt.Fprintf(w, "\n## P4 overhead\n\nGo benchmarks (%s): a queue invocation's envelope decoded, dispatched to a function that decodes its message and metadata and logs a line, and the answer encoded. Per core is from the process's CPU time over a fixed %s invocations on GOMAXPROCS 1, which other load on the machine inflates less than wall time (it still does, through shared caches and sibling hardware threads); wall time is what `go test` prints.\n\n",
		r.BenchCmd, thousands(benchIterations))
	fmt.Fprintf(w, "| benchmark | per core | CPU per op | wall per op | B/op | allocs/op |\n|---|---|---|---|---|---|\n")
	for _, b := range r.Bench {
		fmt.Fprintf(w, "| %s | %s/s | %.1f µs | %.1f µs | %s | %d |\n", b.Name, thousands(int64(b.PerSecond())), b.CPUNsPerOp/1000, b.NsPerOp/1000, thousands(b.BytesPerOp), b.AllocsPerOp)
	}
	var starts []string
	for _, d := range r.FirstAnswer {
		starts = append(starts, ms(d))
	}
	fmt.Fprintf(w, "\nHandler start to first answer on GET / (polled every 1 ms, sample settings, loopback stand-ins): %s. Resident memory (VmRSS) of the last one after %v idle: %.1f MiB.\n",
		strings.Join(starts, ", "), r.IdleFor, float64(r.IdleRSS)/(1<<20))
	fmt.Fprintf(w, "\nThe stand-ins on this machine: the Cosmos stand-in took %s upserts/s from 32 writers with nothing in front of it, so R = %.0f is %.0f %% of it.",
		thousands(int64(r.StandinUpserts)), p1.Spec.Rate, 100*p1.Spec.Rate/r.StandinUpserts)
	var dels []string
	for _, d := range slices.Sorted(maps.Keys(r.AzuriteDelete)) {
		dels = append(dels, fmt.Sprintf("%s with %s messages queued", ms(r.AzuriteDelete[d]), thousands(int64(d))))
	}
	fmt.Fprintf(w, " Azurite took, per delete of a received message (one at a time): %s.\n", strings.Join(dels, "; "))
}
