package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The charts are SVG written by hand: a chart library would be a
// dependency for two pictures, and plain SVG renders on GitHub as an
// image with nothing to run. Every coordinate is printed with fixed
// precision, so the same report always gives the same bytes.

// chart is one picture of the report.
type chart struct {
	file string // name in the chart directory
	alt  string
	svg  []byte
}

func renderCharts(rep report) []chart {
	return []chart{
		{file: "latency.svg", alt: "Latency distributions (p50, p90, p99, max), each next to its baseline", svg: latencyChart(rep)},
		{file: "throughput.svg", alt: "Throughput of each scenario next to its baseline", svg: throughputChart(rep)},
	}
}

// Layout, in pixels: a label column, the plot, then a column of figures,
// so that no label or figure can run into a mark.
const (
	chartWidth   = 800
	labelX       = 12
	indent       = 12 // of a baseline's label under its metric's
	labelChars   = 38 // what fits between labelX and plotLeft at 11 px
	plotLeft     = 262
	plotRight    = 610
	figuresX     = 622
	legendY      = 64
	plotTop      = 92
	rowHeight    = 22
	groupGap     = 10
	axisHeight   = 48
	measuredBlue = "#2563eb" // a measured figure
	baseGray     = "#6b7280" // baselines
	gridColor    = "#e5e7eb"
	textColor    = "#111827"
	mutedColor   = "#4b5563"
)

// canvas accumulates the body of an SVG document.
type canvas struct{ b bytes.Buffer }

func (c *canvas) f(format string, args ...any) { fmt.Fprintf(&c.b, format, args...) }

// esc makes s safe as XML text or attribute value.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// document wraps a body into an SVG of the chart width: title (with date
// and machine, so a chart stands alone), subtitle, white background for
// GitHub's dark theme.
func document(rep report, title, subtitle string, height float64, body *canvas) []byte {
	var c canvas
	full := fmt.Sprintf("%s · %s · %s", title, rep.Started.UTC().Format("2006-01-02"), cpuDescription(rep))
	c.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="11" fill="%s">`+"\n",
		chartWidth, height, chartWidth, height, textColor)
	c.f("<title>%s</title>\n", esc(full))
	c.f(`<rect x="0" y="0" width="%d" height="%.0f" fill="#ffffff"/>`+"\n", chartWidth, height)
	// What fits the width at 15 px bold and at 11 px.
	c.f(`<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", labelX, esc(clip(full, 85)))
	c.f(`<text x="%d" y="43" fill="%s">%s</text>`+"\n", labelX, mutedColor, esc(clip(subtitle, 125)))
	c.b.Write(body.b.Bytes())
	c.f("</svg>\n")
	return c.b.Bytes()
}

// runLine says how the figures were made, for the charts' subtitles.
func runLine(rep report) string {
	run := "full run"
	if rep.Settings.Quick {
		run = "quick run"
	}
	parts := []string{run, fmt.Sprintf("PostgreSQL %s (%s)", rep.Postgres, rep.Server), rep.GoVersion}
	if rep.Commit != "" {
		parts = append(parts, "PiCloud "+rep.Commit)
	}
	return strings.Join(parts, " · ")
}

// label shortens s to what fits the label column from x.
func label(s string, x int) string { return clip(s, labelChars-(x-labelX)/6) }

// clip shortens s to n characters, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// latencyGroup is one latency metric and the baseline it is compared with.
type latencyGroup struct {
	name, baselineName string
	dist               *distribution
	baseline           *distribution
}

// latencyGroups are the latency metrics to draw, each with its baseline.
// A metric that is another's baseline is drawn under that one, not again
// on its own.
func latencyGroups(results []result) []latencyGroup {
	byName := map[string]*distribution{}
	isBaseline := map[string]bool{}
	var groups []latencyGroup
	for _, r := range results {
		if r.Latency == nil {
			continue
		}
		name := r.Scenario + " " + r.Latency.Metric
		if _, dup := byName[name]; dup {
			continue
		}
		byName[name] = r.Latency
		isBaseline[r.Latency.Baseline] = true
		groups = append(groups, latencyGroup{name: name, baselineName: r.Latency.Baseline, dist: r.Latency})
	}
	drawn := groups[:0]
	for _, g := range groups {
		if isBaseline[g.name] {
			continue
		}
		if g.baselineName != "" {
			g.baseline = byName[g.baselineName]
		}
		drawn = append(drawn, g)
	}
	return drawn
}

// logScale maps values onto the plot on whole decades.
type logScale struct{ lo, hi float64 }

// newLogScale covers the positive values given; with none, it covers the
// decades between the floor of a round trip and River's default wake.
func newLogScale(values []float64) logScale {
	lo, hi := math.Inf(1), 0.0
	for _, v := range values {
		if v > 0 && finite(v) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi == 0 {
		return logScale{lo: 0.01, hi: 100}
	}
	s := logScale{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi)))}
	if s.hi <= s.lo {
		s.hi = s.lo * 10
	}
	return s
}

func (s logScale) x(v float64) float64 {
	v = min(max(v, s.lo), s.hi)
	return plotLeft + (math.Log10(v)-math.Log10(s.lo))/(math.Log10(s.hi)-math.Log10(s.lo))*(plotRight-plotLeft)
}

func latencyChart(rep report) []byte {
	groups := latencyGroups(rep.Results)
	var body canvas
	if len(groups) == 0 {
		body.f(`<text x="%d" y="%d" fill="%s">No latency was measured in this run.</text>`+"\n", labelX, plotTop, mutedColor)
		return document(rep, "PiCloud latency", runLine(rep), plotTop+30, &body)
	}
	var values []float64
	for _, g := range groups {
		for _, d := range []*distribution{g.dist, g.baseline} {
			if d != nil && d.Samples > 0 {
				values = append(values, d.Min, d.P50, d.Max)
			}
		}
	}
	scale := newLogScale(values)
	latencyLegend(&body)

	rows := 0
	for _, g := range groups {
		rows++
		if g.baseline != nil {
			rows++
		}
	}
	bottom := float64(plotTop + rows*rowHeight - rowHeight/2 + (len(groups)-1)*groupGap)

	// Grid first, so the marks draw over it.
	for decade := scale.lo; decade <= scale.hi*1.0001; decade *= 10 {
		x := scale.x(decade)
		body.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#d1d5db"/>`+"\n", x, plotTop-rowHeight/2, x, bottom)
		body.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%s</text>`+"\n", x, bottom+16, mutedColor, strconv.FormatFloat(decade, 'f', -1, 64))
		for _, m := range []float64{2, 5} {
			if v := decade * m; v < scale.hi {
				body.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="2 3"/>`+"\n", scale.x(v), plotTop-rowHeight/2, scale.x(v), bottom, gridColor)
			}
		}
	}
	body.f(`<text x="%d" y="%.1f" text-anchor="middle" fill="%s">milliseconds, log scale</text>`+"\n", (plotLeft+plotRight)/2, bottom+34, mutedColor)

	y := float64(plotTop)
	for i, g := range groups {
		if i > 0 {
			sep := y - rowHeight/2 - groupGap/2
			body.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", labelX, sep, chartWidth-labelX, sep, gridColor)
		}
		latencyRow(&body, scale, y, g.name, *g.dist, false)
		y += rowHeight
		if g.baseline != nil {
			latencyRow(&body, scale, y, g.baselineName, *g.baseline, true)
			y += rowHeight
		}
		y += groupGap
	}
	return document(rep, "PiCloud latency", runLine(rep)+" · each metric next to its baseline", bottom+axisHeight, &body)
}

// colorLegend tells a measured figure from its baseline.
func colorLegend(c *canvas) {
	y := float64(legendY)
	c.f(`<g><rect x="%d" y="%.1f" width="10" height="10" fill="%s"/><text x="%d" y="%.1f">measured</text>`, labelX, y-9, measuredBlue, labelX+14, y)
	c.f(`<rect x="%d" y="%.1f" width="10" height="10" fill="%s"/><text x="%d" y="%.1f">baseline, same run</text></g>`+"\n", labelX+84, y-9, baseGray, labelX+98, y)
}

func latencyLegend(c *canvas) {
	y := float64(legendY)
	colorLegend(c)
	// One sample mark per quantile, drawn as in the rows.
	x := float64(plotLeft)
	c.f(`<g stroke="%s" fill="%s">`, mutedColor, mutedColor)
	c.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke-width="1.5"/>`, x, y-4, x+18, y-4)
	c.f(`<text x="%.1f" y="%.1f" stroke="none">min–max</text>`, x+22, y)
	x += 80
	c.f(`<rect x="%.1f" y="%.1f" width="18" height="10" fill-opacity="0.25"/>`, x, y-9)
	c.f(`<text x="%.1f" y="%.1f" stroke="none">p50–p99</text>`, x+22, y)
	x += 80
	c.f(`<circle cx="%.1f" cy="%.1f" r="4.5" stroke="none"/>`, x+4, y-4)
	c.f(`<text x="%.1f" y="%.1f" stroke="none">p50</text>`, x+12, y)
	x += 44
	c.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke-width="2"/>`, x+4, y-9, x+4, y+1)
	c.f(`<text x="%.1f" y="%.1f" stroke="none">p90</text>`, x+12, y)
	x += 44
	c.f(`<circle cx="%.1f" cy="%.1f" r="3" fill="#ffffff" stroke-width="1.5"/>`, x+4, y-4)
	c.f(`<text x="%.1f" y="%.1f" stroke="none">max</text>`, x+12, y)
	c.f("</g>\n")
}

// latencyRow draws one distribution centred on y; a baseline's row is
// indented under its metric's and drawn in gray.
func latencyRow(c *canvas, s logScale, y float64, name string, d distribution, baseline bool) {
	color, fill, x, text := measuredBlue, textColor, labelX, name
	if baseline {
		color, fill, x, text = baseGray, mutedColor, labelX+indent, "vs "+name
	}
	c.f(`<g><title>%s: %d samples, min %s, p50 %s, p90 %s, p99 %s, max %s</title>`, esc(text),
		d.Samples, format(d.Min, "ms"), format(d.P50, "ms"), format(d.P90, "ms"), format(d.P99, "ms"), format(d.Max, "ms"))
	c.f(`<text x="%d" y="%.1f" fill="%s">%s</text>`, x, y+4, fill, esc(label(text, x)))
	if d.Samples > 0 {
		c.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, s.x(d.Min), y, s.x(d.Max), y, color)
		c.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="10" fill="%s" fill-opacity="0.25" stroke="%s"/>`,
			s.x(d.P50), y-5, max(s.x(d.P99)-s.x(d.P50), 1), color, color)
		c.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, s.x(d.P90), y-5, s.x(d.P90), y+5, color)
		c.f(`<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"/>`, s.x(d.P50), y, color)
		c.f(`<circle cx="%.1f" cy="%.1f" r="3" fill="#ffffff" stroke="%s" stroke-width="1.5"/>`, s.x(d.Max), y, color)
	}
	c.f(`<text x="%d" y="%.1f" fill="%s">p50 %s · p99 %s ms</text>`, figuresX, y+4, fill, trimUnit(format(d.P50, "ms")), trimUnit(format(d.P99, "ms")))
	c.f("</g>\n")
}

func trimUnit(s string) string { v, _, _ := strings.Cut(s, " "); return v }

// rateRow is one bar of the throughput chart.
type rateRow struct {
	name, figures string
	value         float64
	baseline      bool
}

func throughputChart(rep report) []byte {
	// As in the latency chart, a rate that is another's baseline is drawn
	// under that one only.
	isBaseline := map[string]bool{}
	for _, r := range rep.Results {
		isBaseline[r.Baseline] = true
	}
	var rows []rateRow
	groups := 0
	for _, r := range rep.Results {
		if !strings.HasSuffix(r.Unit, "/s") || !finite(r.Value) || isBaseline[r.Scenario+" "+r.Metric] {
			continue
		}
		groups++
		figures := format(r.Value, r.Unit)
		if r.Baseline != "" {
			figures += fmt.Sprintf(" (%.2f×)", r.Ratio)
		}
		rows = append(rows, rateRow{name: r.Scenario + " " + r.Metric, figures: figures, value: r.Value})
		if r.Baseline != "" && finite(r.BaselineValue) {
			rows = append(rows, rateRow{name: r.Baseline, figures: format(r.BaselineValue, r.Unit), value: r.BaselineValue, baseline: true})
		}
	}
	var body canvas
	title := "PiCloud throughput"
	if len(rows) == 0 {
		body.f(`<text x="%d" y="%d" fill="%s">No throughput was measured in this run.</text>`+"\n", labelX, plotTop, mutedColor)
		return document(rep, title, runLine(rep), plotTop+30, &body)
	}
	// Linear, so bar lengths compare, unless the rates are too far apart
	// for the smallest to show (a one-statement insert of 100,000 rows
	// next to one HTTP call at a time): then log, on whole decades.
	values := make([]float64, 0, len(rows))
	lo, top := math.Inf(1), 0.0
	for _, r := range rows {
		values = append(values, r.value)
		if r.value > 0 {
			lo = min(lo, r.value)
		}
		top = max(top, r.value)
	}
	var (
		x     func(float64) float64
		ticks []float64
		axis  = "per second, linear scale"
	)
	if top > 20*lo {
		scale := newLogScale(values)
		x, axis = scale.x, "per second, log scale"
		for t := scale.lo; t <= scale.hi*1.0001; t *= 10 {
			ticks = append(ticks, t)
		}
	} else {
		step := niceCeil(top / 5)
		hi := max(math.Ceil(top/step)*step, step)
		x = func(v float64) float64 { return plotLeft + max(v, 0)/hi*(plotRight-plotLeft) }
		for i := 0.0; i*step <= hi*1.0001; i++ {
			ticks = append(ticks, i*step)
		}
	}

	colorLegend(&body)

	bottom := float64(plotTop + len(rows)*rowHeight - rowHeight/2 + (groups-1)*groupGap)
	for _, t := range ticks {
		body.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(t), plotTop-rowHeight/2, x(t), bottom, gridColor)
		body.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%s</text>`+"\n", x(t), bottom+16, mutedColor, tick(t))
	}
	body.f(`<text x="%d" y="%.1f" text-anchor="middle" fill="%s">%s</text>`+"\n", (plotLeft+plotRight)/2, bottom+34, mutedColor, axis)

	y := float64(plotTop)
	for i, r := range rows {
		if i > 0 && !r.baseline {
			y += groupGap
		}
		color, fill, lx, text := measuredBlue, textColor, labelX, r.name
		if r.baseline {
			color, fill, lx, text = baseGray, mutedColor, labelX+indent, "vs "+r.name
		}
		body.f(`<g><title>%s: %s</title>`, esc(text), esc(r.figures))
		body.f(`<text x="%d" y="%.1f" fill="%s">%s</text>`, lx, y+4, fill, esc(label(text, lx)))
		body.f(`<rect x="%d" y="%.1f" width="%.1f" height="12" fill="%s"/>`, plotLeft, y-6, x(r.value)-plotLeft, color)
		body.f(`<text x="%d" y="%.1f" fill="%s">%s</text></g>`+"\n", figuresX, y+4, fill, esc(r.figures))
		y += rowHeight
	}
	return document(rep, title, runLine(rep)+" · each rate next to its baseline", bottom+axisHeight, &body)
}

// niceCeil is the smallest 1, 2, 2.5 or 5 times a power of ten not below
// v: a step a reader can add up.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*exp*1.0000001 {
			return m * exp
		}
	}
	return 10 * exp
}

// tick labels an axis value: 12000 reads as 12k.
func tick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
