package testbed

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metrics scrapes the hub's /metrics and returns the series named, each summed over its
// labels. HubMetrics keeps a fixed list for the benchmark's results; the resilience suite asks
// for other series (go_goroutines, process_open_fds, the spool's backlog) at every sample.
// A name the hub does not export is absent from the map.
func Metrics(httpAddr string, names ...string) (map[string]float64, error) {
	e, err := Scrape(scrapeClient, httpAddr)
	if err != nil {
		return nil, err
	}
	return e.Sum(names...), nil
}

var scrapeClient = &http.Client{Timeout: 10 * time.Second}

// Exposition is one scrape of the hub's /metrics, in Prometheus' text format.
type Exposition string

// Scrape reads the hub's /metrics with c. The resilience suite passes a client that keeps one
// connection open, to watch a hub that can accept no new ones. A status other than 200 is an
// error that carries the start of the body: the hub answers 500 when a collector fails.
func Scrape(c *http.Client, httpAddr string) (Exposition, error) {
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return Exposition(body), nil
}

// Sum returns the series named, each summed over its labels; a name the hub does not export is
// absent from the map.
func (e Exposition) Sum(names ...string) map[string]float64 { return parseMetrics(string(e), names) }

// With sums the samples of name whose labels include every one of labels.
func (e Exposition) With(name string, labels map[string]string) float64 {
	return sumLabeled(string(e), name, labels)
}

// ByLabel sums the samples of name per value of label, such as
// lockerhub_mqtt_connections_refused_total per reason.
func (e Exposition) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	samples(string(e), name, func(labels map[string]string, v float64) { out[labels[label]] += v })
	return out
}

// parseMetrics reads Prometheus' text format: "name{labels} value [timestamp]" per line.
func parseMetrics(text string, names []string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.Lines(text) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		if !slices.Contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// sumLabeled sums the samples of series name whose labels include every one of labels.
func sumLabeled(text, name string, labels map[string]string) float64 {
	sum := 0.0
	samples(text, name, func(have map[string]string, v float64) {
		for k, want := range labels {
			if have[k] != want {
				return
			}
		}
		sum += v
	})
	return sum
}

// samples calls fn with the labels and value of every sample of series name in Prometheus'
// text format; label values holding commas or escaped quotes are not expected from the hub.
func samples(text, name string, fn func(labels map[string]string, v float64)) {
	for line := range strings.Lines(text) {
		series, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(series, "#") {
			continue
		}
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		labels := map[string]string{}
		for kv := range strings.SplitSeq(strings.TrimSuffix(ls, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
			fn(labels, v)
		}
	}
}

// RSS is process pid's resident memory now, in bytes (from /proc/PID/statm, in pages), where
// PeakRSS is its high-water mark: a soak needs the current value to see memory come back down.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: too few fields", pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
