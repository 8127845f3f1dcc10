// Command bench is Sluice's backpressure benchmark, run by `make bench`. It drives the
// real handler binary under the host imitation, against Azurite and the Cosmos stand-in
// behind the fault proxy, and runs each scenario twice: with Sluice's policies, and with
// the baseline a user would otherwise ship (test/bench/baseline: the same functions on
// azcosmos' default retries and the host.json defaults). It prints progress, a table and
// a final key=value line for Sluice's run of P1, and writes a Markdown report with one
// SVG chart per load scenario.
//
//	go run ./test/bench [-out bench-results] [-only P1,P3] [-variants sluice] [-set SETTING=VALUE ...]
//
// -set changes one of Sluice's settings from the sample for the run, to see what a
// tuning does; the report lists every change.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

// The scenarios and the goals they are measured against.
var (
	p1 = drainScenario{ID: "P1", Title: "drain", MinEfficiency: 0.97, MaxThrot: 0.03,
		Spec: drainSpec{Orders: 3000, Rate: 200, Instances: 4, Limit: 90 * time.Second}}
	p2 = drainScenario{ID: "P2", Title: "scale", MinEfficiency: 0.95, MaxThrot: 0.05,
		Spec: drainSpec{Orders: 3000, Rate: 200, Instances: 16, Limit: 90 * time.Second}}
	p3 = shedSpec{Rate: 200, Instances: 4, Load: 800, Duration: 20 * time.Second, IdleLoad: 20, IdleDuration: 10 * time.Second}
)

// results is everything one run measured; a nil result was not run or failed.
type results struct {
	Started            time.Time
	Took               time.Duration
	Machine            machine
	LoadStart, LoadEnd string
	Drains             map[string]map[string]*drainResult // scenario id → variant → result
	Shed               map[string]*shedResult
	Overhead           *overheadResult
	Failures           []string
	// Changed lists Sluice's settings changed from the sample with -set.
	Changed []string
}

// settingFlags collects -set SETTING=VALUE.
type settingFlags []string

func (f *settingFlags) String() string { return strings.Join(*f, " ") }

func (f *settingFlags) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("%q is not SETTING=VALUE", v)
	}
	*f = append(*f, v)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "", "folder for the report and charts (default <repo>/bench-results)")
	only := flag.String("only", "P1,P2,P3,P4", "comma-separated scenarios to run")
	variantNames := flag.String("variants", sluiceName+","+baselineName, "comma-separated configurations to run")
	var changed settingFlags
	flag.Var(&changed, "set", "SETTING=VALUE: change one of Sluice's settings from the sample (repeatable)")
	flag.Parse()
	selected := map[string]bool{}
	for s := range strings.SplitSeq(strings.ToUpper(*only), ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains([]string{"P1", "P2", "P3", "P4"}, s) {
			return fmt.Errorf("-only: %q is not one of P1, P2, P3, P4", s)
		}
		selected[s] = true
	}

	root, err := stack.RepoRoot()
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "bench-results")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res := &results{Started: time.Now(), Machine: describeMachine(), LoadStart: loadAverage(),
		Drains: map[string]map[string]*drainResult{}, Shed: map[string]*shedResult{}}
	fmt.Printf("Sluice backpressure benchmark on %s (%d cores), load average %s\n", res.Machine.CPU, res.Machine.Cores, res.LoadStart)
	fmt.Println("building bin/handler and the baseline handler")
	if err := stack.BuildHandler(root); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sluice, err := sluiceVariant(root)
	if err != nil {
		return err
	}
	for _, kv := range changed {
		k, v, _ := strings.Cut(kv, "=")
		sluice.Settings[k] = v
	}
	res.Changed = changed
	baseline, err := baselineVariant(ctx, root, tmp)
	if err != nil {
		return err
	}
	var variants []variant
	for _, v := range []variant{sluice, baseline} {
		if slices.Contains(strings.Split(*variantNames, ","), v.Name) {
			variants = append(variants, v)
		}
	}
	if err := res.measure(ctx, root, tmp, selected, variants); err != nil {
		return err
	}
	res.Took, res.LoadEnd = time.Since(res.Started), loadAverage()
	return res.finish(*out, selected)
}

// measure runs the selected scenarios for each variant. A scenario that fails is
// recorded and the others still run; an interrupt stops them all.
func (r *results) measure(ctx context.Context, root, tmp string, selected map[string]bool, variants []variant) error {
	for _, sc := range []drainScenario{p1, p2} {
		if !selected[sc.ID] {
			continue
		}
		r.Drains[sc.ID] = map[string]*drainResult{}
		for _, v := range variants {
			label := sc.ID + " " + v.Name
			fmt.Printf("%s: %d orders, %.0f writes/s, %d instances\n", label, sc.Spec.Orders, sc.Spec.Rate, sc.Spec.Instances)
			d, err := runDrain(ctx, label, sc.Spec, v, os.Stdout)
			if err != nil {
				r.fail(label, err)
				continue
			}
			r.Drains[sc.ID][v.Name] = d
			fmt.Printf("  %s: %s\n", label, drainSummary(d))
		}
	}
	if selected["P3"] {
		for _, v := range variants {
			label := "P3 " + v.Name
			fmt.Printf("%s: PUT at %.0f/s for %v (after %.0f/s for %v unloaded), %.0f writes/s, %d instances\n",
				label, p3.Load, p3.Duration, p3.IdleLoad, p3.IdleDuration, p3.Rate, p3.Instances)
			if sh, err := runShed(ctx, label, p3, v, os.Stdout); err != nil {
				r.fail(label, err)
			} else {
				r.Shed[v.Name] = sh
			}
		}
	}
	if selected["P4"] {
		fmt.Println("P4: overhead")
		o, err := runOverhead(ctx, root, tmp, os.Stdout)
		if err != nil {
			r.fail("P4", err)
		}
		r.Overhead = o
	}
	return ctx.Err()
}

// finish writes the report and prints the table and the final line.
func (r *results) finish(out string, selected map[string]bool) error {
	rows := r.rows(selected)
	report, err := writeReport(out, r, rows)
	if err != nil {
		return err
	}
	fmt.Println()
	printTable(os.Stdout, rows)
	fmt.Printf("\nreport: %s\n", report)
	for _, f := range r.Failures {
		fmt.Println("FAILED:", f)
	}
	fmt.Println(finalLine(r.Drains["P1"][sluiceName]))
	if len(r.Failures) > 0 {
		return errors.New("some scenarios failed; see above")
	}
	return nil
}

func (r *results) fail(label string, err error) {
	slog.Error("scenario failed", "scenario", label, "err", err)
	r.Failures = append(r.Failures, label+": "+err.Error())
}

// rows is the results table for the selected scenarios, in order.
func (r *results) rows(selected map[string]bool) []row {
	var rows []row
	for _, sc := range []drainScenario{p1, p2} {
		if selected[sc.ID] {
			rows = append(rows, drainRows(sc, r.Drains[sc.ID][sluiceName], r.Drains[sc.ID][baselineName])...)
		}
	}
	if selected["P3"] {
		rows = append(rows, shedRows(p3, r.Shed[sluiceName], r.Shed[baselineName])...)
	}
	if selected["P4"] {
		rows = append(rows, overheadRows(r.Overhead)...)
	}
	return rows
}

func drainSummary(r *drainResult) string {
	state := fmt.Sprintf("drained in %.1f s", r.Drain.Seconds())
	if !r.Drained {
		state = fmt.Sprintf("did not drain in %v", r.Spec.Limit)
	}
	return fmt.Sprintf("%s, efficiency %.3f, throttled %.1f %% of %s attempts; stored %d, lost %d, duplicated %d, poisoned %d",
		state, r.Efficiency(), 100*r.ThrottledShare(), thousands(r.Attempts), r.Stored, r.Lost, r.Duplicated, r.Poisoned)
}

// variantOrder lists results in the table's order: Sluice, then the baseline.
func variantOrder[T any](m map[string]T) []string {
	var names []string
	for _, n := range []string{sluiceName, baselineName} {
		if _, ok := m[n]; ok {
			names = append(names, n)
		}
	}
	return names
}
