package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one figure of the results table: the goal, Sluice's figure with the verdict
// against the goal, and the baseline's figure for comparison.
type row struct {
	Scenario, Figure, Goal, Sluice, Verdict, Baseline string
}

// verdictAtLeast judges got against a lower bound; unit formats the shortfall.
func verdictAtLeast(got, goal float64, unit func(float64) string) string {
	if got >= goal {
		return "met"
	}
	return fmt.Sprintf("missed by %s (%.1f %%)", unit(goal-got), 100*(goal-got)/goal)
}

// verdictAtMost judges got against an upper bound.
func verdictAtMost(got, goal float64, unit func(float64) string) string {
	if got <= goal {
		return "met"
	}
	return fmt.Sprintf("missed by %s", unit(got-goal))
}

func plain3(v float64) string  { return fmt.Sprintf("%.3f", v) }
func percent(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }
func times(v float64) string   { return fmt.Sprintf("%.2f×", v) }
func perSec(v float64) string  { return thousands(int64(v+0.5)) + "/s" }
func mib(v float64) string     { return fmt.Sprintf("%.1f MiB", v) }
func millis(v float64) string  { return fmt.Sprintf("%.1f ms", v) }

// ms formats a duration in milliseconds, with a decimal under 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// drainScenario names a drain scenario and its goals.
type drainScenario struct {
	ID, Title               string
	Spec                    drainSpec
	MinEfficiency, MaxThrot float64
}

// drainFigures formats one variant's figures for the table; the efficiency is missing
// when the drain did not finish.
func drainFigures(r *drainResult) (eff, thr, outcome string) {
	if r == nil {
		return "not run", "not run", "not run"
	}
	eff = plain3(r.Efficiency())
	if !r.Drained {
		eff = fmt.Sprintf("did not drain in %v (%d of %d stored)", r.Spec.Limit, r.Stored, r.Spec.Orders)
	}
	thr = fmt.Sprintf("%s (%s of %s)", percent(r.ThrottledShare()), thousands(r.Throttled), thousands(r.Attempts))
	outcome = fmt.Sprintf("%d / %d / %d", r.Lost, r.Duplicated, r.Poisoned)
	return eff, thr, outcome
}

func drainRows(sc drainScenario, sluice, baseline *drainResult) []row {
	se, st, so := drainFigures(sluice)
	be, bt, bo := drainFigures(baseline)
	name := sc.ID + " " + sc.Title
	rows := []row{
		{name, "efficiency", fmt.Sprintf("≥ %.2f", sc.MinEfficiency), se, "", be},
		{name, "throttled share of write attempts", fmt.Sprintf("≤ %.0f %%", 100*sc.MaxThrot), st, "", bt},
		{name, "lost / duplicated / poisoned", "0 / 0 / 0", so, "", bo},
	}
	if sluice != nil {
		switch {
		case !sluice.Drained:
			rows[0].Verdict = "missed: did not drain"
		default:
			rows[0].Verdict = verdictAtLeast(sluice.Efficiency(), sc.MinEfficiency, plain3)
		}
		rows[1].Verdict = verdictAtMost(sluice.ThrottledShare(), sc.MaxThrot, func(v float64) string { return fmt.Sprintf("%.1f points", 100*v) })
		rows[2].Verdict = "met"
		if sluice.Lost+sluice.Duplicated+sluice.Poisoned > 0 {
			rows[2].Verdict = "missed"
		}
	}
	return rows
}

// shedFigures formats one variant's figures for the table, in the order of shedRows.
func shedFigures(r *shedResult) []string {
	if r == nil {
		return []string{"not run", "not run", "not run", "not run", "not run", "not run", "not run"}
	}
	u, l := r.Unloaded, r.Loaded
	n := len(l.Shed)
	return []string{
		fmt.Sprintf("%s / %s", ms(percentile(u.Accepted, 50)), ms(percentile(u.Accepted, 99))),
		fmt.Sprintf("%s / %s", ms(percentile(l.Accepted, 50)), ms(percentile(l.Accepted, 99))),
		times(p99Ratio(r)),
		fmt.Sprintf("%s (%s of %s)", percent(share(int64(n), int64(l.Sent))), thousands(int64(n)), thousands(int64(l.Sent))),
		fmt.Sprintf("%s (%s of %s)", percent(share(int64(l.ShedWithRetryAfter), int64(n))), thousands(int64(l.ShedWithRetryAfter)), thousands(int64(n))),
		fmt.Sprintf("%s (p99 %s, max %s)", percent(share(int64(l.ShedWithin(10*time.Millisecond)), int64(n))), ms(percentile(l.Shed, 99)), ms(percentile(l.Shed, 100))),
		fmt.Sprintf("%s failed, %s not sent", thousands(int64(l.Failed)), thousands(int64(l.NotSent))),
	}
}

// p99Ratio is the loaded p99 over the unloaded p99 of accepted requests.
func p99Ratio(r *shedResult) float64 {
	u := percentile(r.Unloaded.Accepted, 99)
	if u == 0 {
		return 0
	}
	return float64(percentile(r.Loaded.Accepted, 99)) / float64(u)
}

func shedRows(spec shedSpec, sluice, baseline *shedResult) []row {
	name := "P3 shedding"
	s, b := shedFigures(sluice), shedFigures(baseline)
	figures := []struct{ figure, goal string }{
		{fmt.Sprintf("accepted p50 / p99, unloaded (%.0f/s)", spec.IdleLoad), "—"},
		{fmt.Sprintf("accepted p50 / p99, loaded (%.0f/s)", spec.Load), "—"},
		{"accepted p99, loaded ÷ unloaded", "≤ 2×"},
		{"share shed (429/503)", "—"},
		{"shed answers with Retry-After", "100 %"},
		{"shed answers within 10 ms", "100 %"},
		{"other answers (5xx, none)", "—"},
	}
	rows := make([]row, len(figures))
	for i, f := range figures {
		rows[i] = row{Scenario: name, Figure: f.figure, Goal: f.goal, Sluice: s[i], Baseline: b[i]}
	}
	if sluice != nil {
		l := sluice.Loaded
		n := int64(len(l.Shed))
		rows[2].Verdict = verdictAtMost(p99Ratio(sluice), 2, times)
		rows[4].Verdict = verdictAtLeast(share(int64(l.ShedWithRetryAfter), n), 1, percent)
		rows[5].Verdict = verdictAtLeast(share(int64(l.ShedWithin(10*time.Millisecond)), n), 1, percent)
		if n == 0 {
			rows[4].Verdict, rows[5].Verdict = "nothing shed", "nothing shed"
		}
	}
	return rows
}

func overheadRows(r *overheadResult) []row {
	name := "P4 overhead"
	if r == nil {
		return []row{{name, "not run", "", "", "", ""}}
	}
	var rows []row
	for _, b := range r.Bench {
		fig := fmt.Sprintf("%s/s per core (%.1f µs CPU, %.1f µs wall, %d allocs)", thousands(int64(b.PerSecond())), b.CPUNsPerOp/1000, b.NsPerOp/1000, b.AllocsPerOp)
		switch b.Name {
		case "BenchmarkDecodeDispatchEncodeNoHTTP":
			rows = append(rows, row{name, "decode → dispatch → encode, no I/O", "≥ 50,000/s per core", fig, verdictAtLeast(b.PerSecond(), 50000, perSec), "n/a"})
		default:
			rows = append(rows, row{name, "the same through httptest", "—", fig, "", "n/a"})
		}
	}
	sorted := slices.Sorted(slices.Values(r.FirstAnswer))
	med := percentile(sorted, 50)
	rows = append(rows,
		row{name, "process start → first answer on GET /", "< 50 ms",
			fmt.Sprintf("median %s (min %s, max %s, %d starts)", ms(med), ms(sorted[0]), ms(sorted[len(sorted)-1]), len(sorted)),
			verdictAtMost(float64(med)/float64(time.Millisecond), 50, millis), "n/a"},
		row{name, fmt.Sprintf("resident memory, idle %v after start", r.IdleFor), "< 25 MiB",
			mib(float64(r.IdleRSS) / (1 << 20)), verdictAtMost(float64(r.IdleRSS)/(1<<20), 25, mib), "n/a"},
	)
	return rows
}

// printTable writes rows as aligned text.
func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tGOAL\tSLUICE\tVERDICT\tBASELINE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Figure, r.Goal, r.Sluice, r.Verdict, r.Baseline)
	}
	tw.Flush()
}

// markdownTable writes rows as a Markdown table.
func markdownTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| Scenario | Figure | Goal | Sluice | Verdict | Baseline |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		cells := []string{r.Scenario, r.Figure, r.Goal, r.Sluice, r.Verdict, r.Baseline}
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// finalLine is the key=value summary of Sluice's run of P1.
func finalLine(r *drainResult) string {
	if r == nil {
		return "efficiency=n/a throttled=n/a lost=n/a duplicated=n/a poisoned=n/a"
	}
	eff := plain3(r.Efficiency())
	if !r.Drained {
		eff = "undrained"
	}
	return fmt.Sprintf("efficiency=%s throttled=%.1f%% lost=%d duplicated=%d poisoned=%d",
		eff, 100*r.ThrottledShare(), r.Lost, r.Duplicated, r.Poisoned)
}
