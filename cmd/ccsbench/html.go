package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// series is one line of a chart.
type series struct {
	name  string
	color string
	vals  []float64 // one per second of the timeline
}

// writeHTML writes the report as one self-contained page: the text
// summary, then throughput and latency per second as inline SVG. The page
// loads nothing (no script, no style sheet, no font, no CDN), so it can be
// mailed or attached to an issue as it is. It is also well-formed XML.
func (r *report) writeHTML(file string) error {
	var page bytes.Buffer
	var text bytes.Buffer
	r.writeText(&text)
	title := fmt.Sprintf("ccsbench %s, %s", r.Scenario, r.Machine.CPUModel)
	fmt.Fprintf(&page, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>%s</title></head>\n", html.EscapeString(title))
	fmt.Fprintf(&page, "<body style=\"font-family: sans-serif; max-width: 60em; margin: 1em auto\">\n<h1 style=\"font-size: 1.3em\">%s</h1>\n", html.EscapeString(title))
	fmt.Fprintf(&page, "<pre style=\"font-size: 0.8em; overflow-x: auto\">%s</pre>\n", html.EscapeString(text.String()))
	for _, c := range r.charts() {
		page.WriteString(c)
	}
	if len(r.Timeline) == 0 {
		page.WriteString("<p>No per-second figures for this scenario.</p>\n")
	}
	page.WriteString("</body></html>\n")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// charts returns the SVG charts of the timeline: throughput, then
// latency.
func (r *report) charts() []string {
	tl := r.Timeline
	if len(tl) == 0 {
		return nil
	}
	col := func(f func(s second) float64) []float64 {
		v := make([]float64, len(tl))
		for i, s := range tl {
			v[i] = f(s)
		}
		return v
	}
	if r.Login != nil {
		return []string{
			svgChart("Logins per second", "/s", []series{{"logins", "#1f77b4", col(func(s second) float64 { return float64(s.Logins) })}}),
			svgChart("Login latency (connect to bind result)", "ms", []series{
				{"p50", "#2ca02c", col(func(s second) float64 { return s.LoginP50 })},
				{"p99", "#d62728", col(func(s second) float64 { return s.LoginP99 })},
			}),
		}
	}
	return []string{
		svgChart("Throughput per second", "/s", []series{
			{"sent", "#7f7f7f", col(func(s second) float64 { return float64(s.Sent) })},
			{"accepted", "#1f77b4", col(func(s second) float64 { return float64(s.Accepted) })},
			{"delivered", "#ff7f0e", col(func(s second) float64 { return float64(s.Delivered) })},
		}),
		svgChart("Latency of the acks and copies of each second", "ms", []series{
			{"ack p50", "#aec7e8", col(func(s second) float64 { return s.AckP50 })},
			{"ack p99", "#1f77b4", col(func(s second) float64 { return s.AckP99 })},
			{"delivery p50", "#ffbb78", col(func(s second) float64 { return s.DeliveryP50 })},
			{"delivery p99", "#d62728", col(func(s second) float64 { return s.DeliveryP99 })},
		}),
	}
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH             = 800, 280
	padL, padR, padT, padB     = 70, 20, 30, 60
	plotW, plotH               = chartW - padL - padR, chartH - padT - padB
	yTicks                     = 5
	legendStep, legendBaseline = 130, chartH - 12
)

// svgChart draws the series as lines over the seconds of the run, with a
// y axis from 0 to a round maximum.
func svgChart(title, unit string, ss []series) string {
	n := len(ss[0].vals)
	top := 0.0
	for _, s := range ss {
		for _, v := range s.vals {
			top = math.Max(top, v)
		}
	}
	top = niceCeil(top)
	x := func(i int) float64 {
		if n == 1 {
			return padL + plotW/2
		}
		return padL + float64(i)*plotW/float64(n-1)
	}
	y := func(v float64) float64 { return padT + plotH - v/top*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, "<h2 style=\"font-size: 1.1em\">%s</h2>\n", html.EscapeString(title))
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n", chartW, chartH, chartW, chartH)
	for k := 0; k <= yTicks; k++ {
		v := top * float64(k) / yTicks
		fmt.Fprintf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", padL, y(v), padL+plotW, y(v))
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", padL-6, y(v)+4, html.EscapeString(fmtTick(v)))
	}
	step := max(1, n/10)
	for i := 0; i < n; i += step {
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%ds</text>", x(i), padT+plotH+16, i)
	}
	fmt.Fprintf(&b, "\n<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">%s</text>\n", padT+plotH/2, padT+plotH/2, html.EscapeString(unit))
	fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", padL, padT, plotW, plotH)
	for j, s := range ss {
		var pts strings.Builder
		for i, v := range s.vals {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(v))
		}
		fmt.Fprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", s.color, strings.TrimSpace(pts.String()))
		lx := padL + j*legendStep
		fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
			lx, legendBaseline-4, s.color, lx+18, legendBaseline, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil returns the smallest of 1, 2, 2.5, 5 times a power of ten that
// is at least v (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtTick formats an axis value compactly.
func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e4)/100)
	case v >= 1e4:
		return fmt.Sprintf("%gk", math.Round(v/10)/100)
	default:
		return fmt.Sprintf("%g", math.Round(v*100)/100)
	}
}
