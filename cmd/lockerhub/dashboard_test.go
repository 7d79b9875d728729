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
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// artifactDir is where the dashboard tests leave their screenshots: var/test-artifacts/dashboard
// in the repository (var/ is ignored by git). Tests run in cmd/lockerhub.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "var", "test-artifacts", "dashboard"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The technician dashboard in headless Chromium against the real hub and simulated units: an
// operator signs in, sees the fleet by site with live updates, opens a unit, acknowledges an
// alert, unlocks a door and signs out; and the pages fit a phone.
func TestDashboard(t *testing.T) {
	t.Parallel()
	webtest.Chromium(t) // skip early, before starting anything
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(fastAlertRules), 0o600); err != nil {
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
	b := webtest.Open(t, ctx)
	shots := artifactDir(t)

	b.SignIn(hubURL, operator.Token)
	b.Do("the overview", chromedp.WaitVisible(chromedp.CSS(`a.tile[data-device="bank-1"]`)))
	if role := webtest.Eval[string](b, `document.getElementById('role').textContent`); role != "operator" {
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
	b.Wait("oak 2 ok, pine 1 ok and 1 offline", counts(map[string]string{"oak": "2000", "pine": "1001"}))
	webtest.Eval[chromedp.Void](b, `window.notReloaded = true`)
	if err := bankHW.SetFault(hardware.FaultForced, 2, true); err != nil {
		t.Fatal(err)
	}
	b.Wait("oak 1 ok and 1 critical, live", counts(map[string]string{"oak": "1010", "pine": "1001"})+
		` && document.querySelector('a.tile[data-device="bank-1"]').dataset.health === 'critical'`+
		` && document.querySelector('a.tile[data-device="bank-1"] .badge').textContent === 'Critical'`)
	if !webtest.Eval[bool](b, `window.notReloaded === true`) {
		t.Error("the overview reloaded to show the change")
	}
	b.Wait("the Live indicator", `document.getElementById('conn').dataset.state === 'live'`)
	b.FitsWidth("the overview at 1280 px")
	b.Screenshot(filepath.Join(shots, "overview-desktop.png"))

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
	b.Do("open bank-1 and acknowledge",
		chromedp.Click(chromedp.CSS(`a.tile[data-device="bank-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-action="ack"]`)),
		chromedp.Click(chromedp.CSS(row+` [data-action="ack"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] textarea[name=note]`)),
		chromedp.SendKeys(chromedp.CSS(`dialog[open] textarea[name=note]`), note),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	b.Wait("the alert acknowledged on the page", `document.querySelector('`+row+`').dataset.state === 'acknowledged' && document.querySelector('`+row+`').textContent.includes(`+strconv.Quote(note)+`)`)
	code, body := hub.getAs(t, operator.Token, fmt.Sprint("/api/v1/alerts/", forced.ID))
	var acked fleet.Alert
	if json.Unmarshal([]byte(body), &acked) != nil || code != 200 || acked.State != fleet.AlertAcknowledged ||
		acked.AckedBy != "token:"+operator.ID || acked.AckNote != note {
		t.Errorf("after acknowledging in the dashboard the API says %d %s", code, body)
	}

	// Tab stays in a dialog; Escape closes it and gives the focus back to the button that opened it.
	b.Do("open the resolve dialog and tab around",
		chromedp.Click(chromedp.CSS(row+` [data-action="resolve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] textarea[name=note]`)),
		chromedp.KeyEvent(kb.Tab+kb.Tab+kb.Tab+kb.Tab))
	if !webtest.Eval[bool](b, `document.querySelector('dialog').contains(document.activeElement)`) {
		t.Error("Tab left the dialog")
	}
	b.Do("escape the dialog",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	if focus := webtest.Eval[string](b, `document.activeElement.dataset.action ?? ''`); focus != "resolve" {
		t.Errorf("after Escape the focus is on %q, want the Resolve button", focus)
	}

	// A remote unlock: the reason is required, the dialog confirms, the outcome shows.
	b.Do("unlock without a reason",
		chromedp.Click(chromedp.CSS(`form.unlock button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.unlock .field-error`)))
	if webtest.Eval[bool](b, `document.querySelector('dialog') !== null`) {
		t.Error("an unlock without a reason asked for confirmation")
	}
	const reason = "resident locked out"
	b.Do("unlock door 1",
		chromedp.SetValue(chromedp.CSS(`form.unlock select`), "1"),
		chromedp.SendKeys(chromedp.CSS(`form.unlock input[name=reason]`), reason),
		chromedp.Click(chromedp.CSS(`form.unlock button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)))
	b.Wait("the unlock's outcome", `!['', 'pending'].includes(document.querySelector('.outcome').dataset.outcome)`)
	outcome := webtest.Eval[map[string]string](b, `({...document.querySelector('.outcome').dataset, text: document.querySelector('.outcome').textContent})`)
	if latency, err := strconv.Atoi(outcome["latency"]); outcome["outcome"] != "opened" || err != nil || latency <= 0 ||
		!strings.Contains(outcome["text"], "opened") || !strings.Contains(outcome["text"], outcome["latency"]+" ms") {
		t.Errorf("unlock outcome on the page: %v", outcome)
	}
	b.Wait("the command in the unit's list", `document.querySelector('table.commands').textContent.includes(`+strconv.Quote(reason)+`)`)
	b.Wait("the charts", `[...document.querySelectorAll('figure.chart')].every((f) => f.dataset.state !== 'loading')`)
	states := webtest.Eval[[]string](b, `[...document.querySelectorAll('figure.chart')].map((f) => f.dataset.state)`)
	for _, s := range states {
		if withInflux && s == "error" || !withInflux && s != "error" {
			t.Errorf("chart states %v (InfluxDB running: %v)", states, withInflux)
		}
	}
	if !withInflux && !strings.Contains(webtest.Eval[string](b, `document.querySelector('figure.chart').textContent`), "(503)") {
		t.Error("a chart without InfluxDB does not say why")
	}
	b.FitsWidth("the unit page at 1280 px")
	b.Screenshot(filepath.Join(shots, "unit-desktop.png"))

	// The alerts page lists it, acknowledged, with its age.
	b.Do("the alerts page", chromedp.Click(chromedp.CSS(`nav a[data-nav="alerts"]`)))
	b.Wait("the alert on the alerts page", `document.querySelector('`+row+`')?.dataset.state === 'acknowledged' && /min/.test(document.querySelector('`+row+` time').textContent)`)

	// A phone: nothing wider than the screen.
	b.Do("phone overview",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(hubURL+"#/"),
		chromedp.WaitVisible(chromedp.CSS(`a.tile[data-device="bank-3"]`)))
	b.FitsWidth("the overview at 390 px")
	b.Screenshot(filepath.Join(shots, "overview-phone.png"))
	b.Do("phone unit page", chromedp.Navigate(hubURL+"#/unit/bank-1"), chromedp.WaitVisible(chromedp.CSS(`form.unlock`)))
	b.Wait("the charts", `[...document.querySelectorAll('figure.chart')].every((f) => f.dataset.state !== 'loading')`)
	b.FitsWidth("the unit page at 390 px")
	b.Screenshot(filepath.Join(shots, "unit-phone.png"))

	// Sign out: the token is gone from the tab.
	b.Do("sign out", chromedp.Click(chromedp.ID(`sign-out`)), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	if webtest.Eval[bool](b, `sessionStorage.length !== 0 || !document.body.textContent.includes('Signed out')`) {
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
