package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// chromium returns the browser for the dashboard tests: $CHROMIUM, or Debian's chromium. Without
// one the test is skipped, or fails when the environment variable CI is set
// (scripts/test-deps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Chromium for the browser tests at %s (%v): run scripts/test-deps.sh (Debian's chromium) or set CHROMIUM", path, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// artifactDir is where the dashboard tests leave their screenshots: var/test-artifacts/dashboard
// in the repository (var/ is ignored by git). Tests run in cmd/lockerhub.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "var", "test-artifacts", "dashboard"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium tab on the dashboard, with what its console said.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string

	mu       sync.Mutex
	problems []string // exceptions, CSP violations, console.error calls
}

func openBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // headless, --disable-background-networking
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	tab, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	b := &browser{t: t, ctx: tab, artifacts: artifactDir(t)}
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Failed requests are logged by the network; the app shows API errors itself, and
			// some are expected (the capability probes, history without InfluxDB).
			if m.IsException() || m.Source == "security" || m.Type == chromedp.ConsoleError && m.Source != "network" {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s [%s] %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.page())
	}
}

// wait polls a JavaScript expression in the page until it is truthy.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v\n%s", what, err, b.page())
	}
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// page is the text on screen, for failure messages.
func (b *browser) page() string {
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText`))
	return "page: " + text
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(b.artifacts, name+".png"), png, 0o644)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// fitsWidth fails unless the page is as wide as the viewport: nothing overflows sideways.
func (b *browser) fitsWidth(what string) {
	b.t.Helper()
	if w := eval[[]int](b, `[document.documentElement.scrollWidth, innerWidth]`); w[0] > w[1] {
		b.t.Errorf("%s overflows horizontally: scrollWidth %d > innerWidth %d", what, w[0], w[1])
	}
}

func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
}

// The rules for this test: a forced door at once, an unconnected unit offline after a second.
const dashboardAlertRules = `
tick: 100ms
authorize_window: 5s
heartbeat_timeout: 5s
telemetry_interval: 200ms
rules:
  - {name: device-offline, kind: offline, severity: major, for: 1s}
  - {name: forced-entry, kind: forced_entry, severity: critical}
`

// The technician dashboard in headless Chromium against the real hub and simulated units: an
// operator signs in, sees the fleet by site with live updates, opens a unit, acknowledges an
// alert, unlocks a door and signs out; and the pages fit a phone.
func TestDashboard(t *testing.T) {
	chromium(t) // skip early, before starting anything
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(dashboardAlertRules), 0o600); err != nil {
		t.Fatal(err)
	}
	// Charts need InfluxDB: the development one when it runs, else an address where nothing
	// answers, and the charts say that the history is unavailable.
	influx := []string{"LOCKERHUB_INFLUX_URL=http://127.0.0.1:" + freePort(t)}
	withInflux := influxRunning()
	if withInflux {
		inf := testinflux.Require(t)
		influx = []string{"LOCKERHUB_INFLUX_URL=" + inf.URL, "LOCKERHUB_INFLUX_BUCKET=" + inf.Bucket}
	}
	environ := env(filepath.Join(dir, "hub"), append(influx, "LOCKERHUB_ALERTS_FILE="+rules)...)
	secrets := map[string]string{}
	for _, d := range [][]string{
		{"bank-1", "locker-bank", "oak", "4"}, {"fridge-1", "fridge", "oak", "2"},
		{"bank-2", "locker-bank", "pine", "4"}, {"bank-3", "locker-bank", "pine", "2"}, // bank-3 never connects
	} {
		out, errOut, code := run(t, environ, "device", "add", "--id", d[0], "--kind", d[1], "--site", d[2], "--doors", d[3], "--json")
		var added struct{ Secret string }
		if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
			t.Fatalf("device add %s: %s", d[0], errOut)
		}
		secrets[d[0]] = added.Secret
	}
	hub := startHub(t, environ)
	hubURL := "http://" + hub.http + "/"
	testhub.WaitFor(t, 5*time.Second, "GET / to serve the dashboard (web.Handler mounted on the hub's mux)", func() bool {
		code, body := hub.get(t, "/")
		return code == 200 && strings.Contains(body, `src="js/main.js"`)
	})
	bankHW, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, Seed: 1,
		OpenDelay: 200 * time.Millisecond, HoldOpen: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runUnit(t, hub.mqtt, "bank-1", secrets["bank-1"], filepath.Join(dir, "bank-1"), bankHW)
	for _, u := range []struct {
		id   string
		kind hardware.Kind
		n    int
	}{{"fridge-1", hardware.KindFridge, 2}, {"bank-2", hardware.KindLockerBank, 4}} {
		hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: u.kind, Doors: u.n, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		runUnit(t, hub.mqtt, u.id, secrets[u.id], filepath.Join(dir, u.id), hw)
	}
	operator := createToken(t, environ, "--name", "front desk", "--role", "operator")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := openBrowser(t, ctx)
	defer b.checkConsole()

	// Sign in.
	b.do("sign in",
		chromedp.Navigate(hubURL),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), operator.Token),
		chromedp.Click(chromedp.CSS(`form.signin button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.tile[data-device="bank-1"]`)))
	if role := eval[string](b, `document.getElementById('role').textContent`); role != "operator" {
		t.Errorf("header shows the role %q, want operator", role)
	}

	// The fleet by site, then a forced door turns bank-1 critical without a reload.
	counts := func(want map[string]string) string {
		var conds []string
		for site, c := range want {
			for i, k := range []string{"ok", "warning", "critical", "offline"} {
				conds = append(conds, fmt.Sprintf(`document.querySelector('[data-site="%s"] [data-count="%s"] .n')?.textContent === '%c'`, site, k, c[i]))
			}
		}
		return strings.Join(conds, " && ")
	}
	b.wait("oak 2 ok, pine 1 ok and 1 offline", counts(map[string]string{"oak": "2000", "pine": "1001"}))
	eval[chromedp.Void](b, `window.notReloaded = true`)
	if err := bankHW.SetFault(hardware.FaultForced, 2, true); err != nil {
		t.Fatal(err)
	}
	b.wait("oak 1 ok and 1 critical, live", counts(map[string]string{"oak": "1010", "pine": "1001"})+
		` && document.querySelector('a.tile[data-device="bank-1"]').dataset.health === 'critical'`+
		` && document.querySelector('a.tile[data-device="bank-1"] .badge').textContent === 'Critical'`)
	if !eval[bool](b, `window.notReloaded === true`) {
		t.Error("the overview reloaded to show the change")
	}
	b.wait("the Live indicator", `document.getElementById('conn').dataset.state === 'live'`)
	b.fitsWidth("the overview at 1280 px")
	b.screenshot("overview-desktop")

	// The alert, from the API, to follow it on the page.
	var forced fleet.Alert
	testhub.WaitFor(t, 10*time.Second, "the forced-entry alert", func() bool {
		_, body := hub.getAs(t, operator.Token, "/api/v1/alerts?state=open&device=bank-1")
		var res struct{ Alerts []fleet.Alert }
		json.Unmarshal([]byte(body), &res)
		for _, a := range res.Alerts {
			if a.Rule == "forced-entry" {
				forced = a
				return true
			}
		}
		return false
	})

	// Open the unit and acknowledge the alert with a note.
	row := fmt.Sprintf(`tr[data-alert-id="%d"]`, forced.ID)
	const note = "on my way, ETA 10 min"
	b.do("open bank-1 and acknowledge",
		chromedp.Click(chromedp.CSS(`a.tile[data-device="bank-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-action="ack"]`)),
		chromedp.Click(chromedp.CSS(row+` [data-action="ack"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] textarea[name=note]`)),
		chromedp.SendKeys(chromedp.CSS(`dialog[open] textarea[name=note]`), note),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	b.wait("the alert acknowledged on the page", `document.querySelector('`+row+`').dataset.state === 'acknowledged' && document.querySelector('`+row+`').textContent.includes(`+strconv.Quote(note)+`)`)
	code, body := hub.getAs(t, operator.Token, fmt.Sprint("/api/v1/alerts/", forced.ID))
	var acked fleet.Alert
	if json.Unmarshal([]byte(body), &acked) != nil || code != 200 || acked.State != fleet.AlertAcknowledged ||
		acked.AckedBy != "token:"+operator.ID || acked.AckNote != note {
		t.Errorf("after acknowledging in the dashboard the API says %d %s", code, body)
	}

	// Tab stays in a dialog; Escape closes it and gives the focus back to the button that opened it.
	b.do("open the resolve dialog and tab around",
		chromedp.Click(chromedp.CSS(row+` [data-action="resolve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] textarea[name=note]`)),
		chromedp.KeyEvent(kb.Tab+kb.Tab+kb.Tab+kb.Tab))
	if !eval[bool](b, `document.querySelector('dialog').contains(document.activeElement)`) {
		t.Error("Tab left the dialog")
	}
	b.do("escape the dialog",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	if focus := eval[string](b, `document.activeElement.dataset.action ?? ''`); focus != "resolve" {
		t.Errorf("after Escape the focus is on %q, want the Resolve button", focus)
	}

	// A remote unlock: the reason is required, the dialog confirms, the outcome shows.
	b.do("unlock without a reason",
		chromedp.Click(chromedp.CSS(`form.unlock button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.unlock .field-error`)))
	if eval[bool](b, `document.querySelector('dialog') !== null`) {
		t.Error("an unlock without a reason asked for confirmation")
	}
	const reason = "resident locked out"
	b.do("unlock door 1",
		chromedp.SetValue(chromedp.CSS(`form.unlock select`), "1"),
		chromedp.SendKeys(chromedp.CSS(`form.unlock input[name=reason]`), reason),
		chromedp.Click(chromedp.CSS(`form.unlock button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)))
	b.wait("the unlock's outcome", `!['', 'pending'].includes(document.querySelector('.outcome').dataset.outcome)`)
	outcome := eval[map[string]string](b, `({...document.querySelector('.outcome').dataset, text: document.querySelector('.outcome').textContent})`)
	if latency, err := strconv.Atoi(outcome["latency"]); outcome["outcome"] != "opened" || err != nil || latency <= 0 ||
		!strings.Contains(outcome["text"], "opened") || !strings.Contains(outcome["text"], outcome["latency"]+" ms") {
		t.Errorf("unlock outcome on the page: %v", outcome)
	}
	b.wait("the command in the unit's list", `document.querySelector('table.commands').textContent.includes(`+strconv.Quote(reason)+`)`)
	b.wait("the charts", `[...document.querySelectorAll('figure.chart')].every((f) => f.dataset.state !== 'loading')`)
	states := eval[[]string](b, `[...document.querySelectorAll('figure.chart')].map((f) => f.dataset.state)`)
	for _, s := range states {
		if withInflux && s == "error" || !withInflux && s != "error" {
			t.Errorf("chart states %v (InfluxDB running: %v)", states, withInflux)
		}
	}
	if !withInflux && !strings.Contains(eval[string](b, `document.querySelector('figure.chart').textContent`), "(503)") {
		t.Error("a chart without InfluxDB does not say why")
	}
	b.fitsWidth("the unit page at 1280 px")
	b.screenshot("unit-desktop")

	// The alerts page lists it, acknowledged, with its age.
	b.do("the alerts page", chromedp.Click(chromedp.CSS(`nav a[data-nav="alerts"]`)))
	b.wait("the alert on the alerts page", `document.querySelector('`+row+`')?.dataset.state === 'acknowledged' && /min/.test(document.querySelector('`+row+` time').textContent)`)

	// A phone: nothing wider than the screen.
	b.do("phone overview",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(hubURL+"#/"),
		chromedp.WaitVisible(chromedp.CSS(`a.tile[data-device="bank-3"]`)))
	b.fitsWidth("the overview at 390 px")
	b.screenshot("overview-phone")
	b.do("phone unit page", chromedp.Navigate(hubURL+"#/unit/bank-1"), chromedp.WaitVisible(chromedp.CSS(`form.unlock`)))
	b.wait("the charts", `[...document.querySelectorAll('figure.chart')].every((f) => f.dataset.state !== 'loading')`)
	b.fitsWidth("the unit page at 390 px")
	b.screenshot("unit-phone")

	// Sign out: the token is gone from the tab.
	b.do("sign out", chromedp.Click(chromedp.ID(`sign-out`)), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	if eval[bool](b, `sessionStorage.length !== 0 || !document.body.textContent.includes('Signed out')`) {
		t.Error("after signing out the session is still stored or the page does not say so")
	}
}

// influxRunning reports whether the development InfluxDB answers (testinflux would skip).
func influxRunning() bool {
	url := os.Getenv(testinflux.EnvURL)
	if url == "" {
		url = testinflux.DefaultURL
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(strings.TrimRight(url, "/") + "/ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}
