package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
)

// A unit added minutes ago opens on the shortest period that covers its registration, at a
// resolution that shows its minutes of readings; the charts then follow the live stream,
// sliding the period and dropping what leaves it. The periods of 15 min and 1 h ask the hub for
// matching windows.
func TestDashboardHistoryOfNewUnit(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	api.created["fridge-1"] = time.Now().Add(-5 * time.Minute)
	api.history = map[string][]fakePoint{"1": {{4 * time.Minute, 3}, {3 * time.Minute, 3.5}, {time.Minute, 4}}}
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)

	b.SignIn(url, viewerToken)
	b.Do("the unit page", chromedp.Navigate(url+"#/unit/fridge-1"))
	b.Wait("the charts", `document.querySelector('figure.chart')?.dataset.points === '3 0'`)
	if got := webtest.Eval[string](b, `document.querySelector('.range [aria-pressed=true]').textContent`); got != "15 min" {
		t.Errorf("period of a unit added 5 min ago: %q, want 15 min", got)
	}
	span, every := lastQuery(api)
	if span != 15*time.Minute || every != "10s" {
		t.Errorf("history asked for %s in windows of %s, want 15m0s in windows of 10s", span, every)
	}

	// Live readings: appended at once, and the period slides with them.
	now := time.Now()
	b.Wait("the stream", `document.getElementById('conn').dataset.state === 'live'`)
	api.events <- sse("telemetry", map[string]any{"v": 1, "seq": 2, "ts": now.UnixMilli(),
		"doors": []map[string]any{{"door": 1, "temp_c": 7.5}, {"door": 2, "temp_c": 2}}, "compressor": map[string]any{"on": true, "duty": 0.25}})
	b.Wait("the live reading on the charts", `document.querySelector('figure.chart').dataset.points === '4 1'`+
		` && document.querySelectorAll('figure.chart')[1].dataset.points === '1'`)
	if got := webtest.Eval[string](b, `document.querySelector('figure.chart .chart-summary').textContent`); !strings.Contains(got, "Door 1: latest 7.5 °C") {
		t.Errorf("temperature summary after a live reading: %q", got)
	}
	// 13.5 minutes later the period starts 1.5 minutes before now: the readings of 4 and 3
	// minutes ago leave it.
	api.events <- sse("telemetry", map[string]any{"v": 1, "seq": 3, "ts": now.Add(27 * time.Minute / 2).UnixMilli(),
		"doors": []map[string]any{{"door": 1, "temp_c": 5}}})
	b.Wait("the period slid", `document.querySelector('figure.chart').dataset.points === '3 1'`)

	b.Do("the 1 h period", chromedp.Click(chromedp.CSS(`.range button:nth-child(3)`)))
	b.Wait("1 h pressed", `document.querySelector('.range [aria-pressed=true]').textContent === '1 h'`)
	b.Wait("the 1 h history", `document.querySelector('figure.chart').dataset.state === 'ready'`)
	if span, every := lastQuery(api); span != time.Hour || every != "30s" {
		t.Errorf("1 h history asked for %s in windows of %s, want 1h0m0s in windows of 30s", span, every)
	}
}

// An older unit opens on the default period of 6 h.
func TestDashboardHistoryOfOldUnit(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)
	b.SignIn(url, operatorToken)
	b.Do("the unit page", chromedp.Navigate(url+"#/unit/fridge-1"))
	b.Wait("the charts", `document.querySelector('figure.chart')?.dataset.state === 'ready'`)
	if got := webtest.Eval[string](b, `document.querySelector('.range [aria-pressed=true]').textContent`); got != "6 h" {
		t.Errorf("period of a unit added 30 days ago: %q, want 6 h", got)
	}
}

// lastQuery is the period and window of the last history request.
func lastQuery(api *fakeAPI) (time.Duration, string) {
	api.mu.Lock()
	defer api.mu.Unlock()
	q := api.queries[len(api.queries)-1]
	from, _ := time.Parse(time.RFC3339, q.Get("from"))
	to, _ := time.Parse(time.RFC3339, q.Get("to"))
	return to.Sub(from), q.Get("every")
}
