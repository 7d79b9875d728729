package main

import (
	"fmt"
	"html"
	"strings"
)

// sample is one measurement of the hub during the soak.
type sample struct {
	T          float64 `json:"t_s"` // seconds since the soak started
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines float64 `json:"goroutines"`
	OpenFDs    float64 `json:"open_fds"`
	Backlog    float64 `json:"spool_backlog"` // messages not yet in InfluxDB
}

// Layout of the soak chart: one panel per series, stacked, sharing the time axis.
const (
	chartWidth  = 720
	panelHeight = 140
	chartLeft   = 70 // room for the y labels
	chartRight  = 20
	chartTop    = 30
	panelGap    = 40
)

// chartSeries are the panels of the soak chart.
var chartSeries = []struct {
	name, unit, color string
	value             func(sample) float64
}{
	{"hub RSS", "MiB", "#1f77b4", func(s sample) float64 { return s.RSSMiB }},
	{"goroutines", "", "#ff7f0e", func(s sample) float64 { return s.Goroutines }},
	{"open file descriptors", "", "#2ca02c", func(s sample) float64 { return s.OpenFDs }},
}

// soakSVG draws the samples as a plain SVG document: one polyline per series, each in its own
// panel with its own scale from zero (so that a flat line looks flat, not like noise blown up
// to the panel's height), with a point per sample. warmupT marks where the judgement starts.
func soakSVG(samples []sample, warmupT float64) string {
	height := chartTop + len(chartSeries)*(panelHeight+panelGap)
	plotW := float64(chartWidth - chartLeft - chartRight)
	tMax := 1.0
	if n := len(samples); n > 0 && samples[n-1].T > 0 {
		tMax = samples[n-1].T
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">Hub during the soak: %d samples over %.0f s</text>`+"\n", chartLeft, len(samples), tMax)
	for i, s := range chartSeries {
		top := float64(chartTop + i*(panelHeight+panelGap) + 10)
		bottom := top + panelHeight
		yMax := 0.0
		for _, smp := range samples {
			yMax = max(yMax, s.value(smp))
		}
		yMax = niceCeil(yMax)
		label := s.name
		if s.unit != "" {
			label += " (" + s.unit + ")"
		}
		fmt.Fprintf(&b, `<g><text x="%d" y="%.0f">%s</text>`+"\n", chartLeft, top-4, html.EscapeString(label))
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#ccc"/>`+"\n", chartLeft, top, plotW, panelHeight)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%g</text><text x="%d" y="%.0f" text-anchor="end">0</text>`+"\n",
			chartLeft-6, top+10, yMax, chartLeft-6, bottom)
		if warmupT > 0 {
			x := chartLeft + warmupT/tMax*plotW
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#999" stroke-dasharray="4 3"/>`+"\n", x, top, x, bottom)
		}
		points := make([]string, len(samples))
		for j, smp := range samples {
			x := chartLeft + smp.T/tMax*plotW
			y := bottom - s.value(smp)/yMax*panelHeight
			points[j] = fmt.Sprintf("%.1f,%.1f", x, y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/></g>`+"\n", s.color, strings.Join(points, " "))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">time (s) 0 … %.0f; dashed line: end of warm-up</text>`+"\n", chartLeft, height-8, tMax)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for an axis label; at least 1.
func niceCeil(v float64) float64 {
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
