package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/test/faultproxy"
)

// chartPanel is one variant's run in a chart.
type chartPanel struct {
	Title  string // e.g. "sluice"
	Note   string // one line of figures under the title
	Series []faultproxy.Bucket
	Width  time.Duration
}

// chartBin is the interval the chart plots rates over.
const chartBin = 500 * time.Millisecond

// Chart geometry, in SVG user units.
const (
	chartW      = 960.0
	marginLeft  = 70.0
	marginRight = 30.0
	plotW       = chartW - marginLeft - marginRight
	panelH      = 372.0
	writesH     = 180.0
	throttledH  = 70.0
	headerH     = 60.0
)

// rates sums a proxy series into chartBin intervals and returns per-second rates of
// forwarded and throttled writes.
func rates(series []faultproxy.Bucket, width time.Duration) (written, throttled []float64) {
	per := max(int(chartBin/width), 1)
	seconds := (time.Duration(per) * width).Seconds()
	for i := 0; i < len(series); i += per {
		var w, t int64
		for _, b := range series[i:min(i+per, len(series))] {
			w += b.WritesForwarded
			t += b.WritesThrottled
		}
		written = append(written, float64(w)/seconds)
		throttled = append(throttled, float64(t)/seconds)
	}
	return written, throttled
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// renderChart draws writes per second over time against the capacity line, with the
// throttled attempts beneath, one panel per variant on a shared time axis.
func renderChart(title string, capacity float64, panels []chartPanel) string {
	type data struct{ written, throttled []float64 }
	ds := make([]data, len(panels))
	bins, peak := 1, capacity
	for i, p := range panels {
		ds[i].written, ds[i].throttled = rates(p.Series, p.Width)
		bins = max(bins, len(ds[i].written))
		for _, w := range ds[i].written {
			peak = max(peak, w)
		}
	}
	yStep := niceCeil(max(1.25*capacity, 1.05*peak) / 5)
	yMax := yStep * math.Ceil(max(1.25*capacity, 1.05*peak)/yStep)
	span := float64(bins) * chartBin.Seconds()
	xOf := func(t float64) float64 { return marginLeft + plotW*t/span }

	var b strings.Builder
	height := headerH + panelH*float64(len(panels))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		chartW, height, chartW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="26" font-size="17" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="46" fill="#444">writes the store accepted per second (blue) against its capacity of %.0f/s (red, dashed); throttled attempts per second beneath (orange); %.1f s bins</text>`+"\n",
		marginLeft, capacity, chartBin.Seconds())

	for i, p := range panels {
		top := headerH + panelH*float64(i)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", marginLeft, top+16, html.EscapeString(p.Title))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#444">%s</text>`+"\n", marginLeft, top+34, html.EscapeString(p.Note))
		writesTop := top + 46
		writesAxis(&b, writesTop, yMax, yStep)
		yOf := func(v float64) float64 { return writesTop + writesH - writesH*v/yMax }
		fmt.Fprintf(&b, `<path d="%s" fill="#1f77b4" fill-opacity="0.25" stroke="#1f77b4" stroke-width="1.5"/>`+"\n",
			stepPath(ds[i].written, xOf, yOf, writesTop+writesH))
		cy := yOf(capacity)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
			marginLeft, cy, marginLeft+plotW, cy)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#d62728" text-anchor="end">capacity %.0f/s</text>`+"\n", marginLeft+plotW-4, cy-4, capacity)

		thrTop := writesTop + writesH + 24
		thrPeak := 0.0
		for _, t := range ds[i].throttled {
			thrPeak = max(thrPeak, t)
		}
		tMax := niceCeil(max(thrPeak, 1))
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`+"\n", marginLeft, thrTop, plotW, throttledH)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", marginLeft-6, thrTop+10, formatRate(tMax))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#444">0</text>`+"\n", marginLeft-6, thrTop+throttledH)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="#ff7f0e">throttled attempts/s (peak %s)</text>`+"\n", marginLeft, thrTop-5, formatRate(thrPeak))
		barW := plotW / float64(bins)
		for j, t := range ds[i].throttled {
			if t <= 0 {
				continue
			}
			h := throttledH * t / tMax
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ff7f0e"/>`+"\n",
				marginLeft+barW*float64(j), thrTop+throttledH-h, math.Max(barW-0.5, 0.5), h)
		}
		timeAxis(&b, thrTop+throttledH, span, xOf)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// writesAxis draws the frame, grid and labels of a writes-per-second plot.
func writesAxis(b *strings.Builder, top, yMax, step float64) {
	fmt.Fprintf(b, `<rect x="%.0f" y="%.1f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`+"\n", marginLeft, top, plotW, writesH)
	for v := 0.0; v <= yMax+1e-9; v += step {
		y := top + writesH - writesH*v/yMax
		if v > 0 && v < yMax-1e-9 {
			fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`+"\n", marginLeft, y, marginLeft+plotW, y)
		}
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", marginLeft-6, y+4, formatRate(v))
	}
	fmt.Fprintf(b, `<text transform="translate(%.0f %.1f) rotate(-90)" text-anchor="middle" fill="#444">writes/s</text>`+"\n", marginLeft-48, top+writesH/2)
}

// timeAxis draws second ticks under a plot whose bottom edge is at y.
func timeAxis(b *strings.Builder, y, span float64, xOf func(float64) float64) {
	step := niceCeil(span / 12)
	for t := 0.0; t <= span+1e-9; t += step {
		x := xOf(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`+"\n", x, y, x, y+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%gs</text>`+"\n", x, y+16, t)
	}
}

// stepPath is a closed step outline of values, one chartBin wide each, down to base.
func stepPath(values []float64, xOf func(float64) float64, yOf func(float64) float64, base float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%.1f %.1f", xOf(0), base)
	bin := chartBin.Seconds()
	for i, v := range values {
		y := yOf(v)
		fmt.Fprintf(&b, " L%.1f %.1f L%.1f %.1f", xOf(float64(i)*bin), y, xOf(float64(i+1)*bin), y)
	}
	fmt.Fprintf(&b, " L%.1f %.1f Z", xOf(float64(len(values))*bin), base)
	return b.String()
}

func formatRate(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}
