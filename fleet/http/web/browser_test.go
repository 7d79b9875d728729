package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lockerhub/lockerhub/fleet/http/web"
	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
)

// fakeAPI is a hub's API as the dashboard sees it, with answers a test controls: the ones the
// real hub gives only in situations that are hard to make (a unit offline at the moment of an
// unlock, a rate limit, a revoked token) and an event stream split in awkward places. The
// operator's hub has no stream (404), so that the dashboard polls.
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex
	health map[string]string // device id -> health
	// unlockAnswers are the next answers to an unlock: status and body.
	unlockAnswers []fakeAnswer
	unlocks       []string // "reason|Idempotency-Key" of each unlock request
	revoked       bool
	events        chan string                 // pieces of event stream text for the viewer's stream
	created       map[string]time.Time        // device id -> created_at; 30 days ago otherwise
	history       map[string][]fakePoint      // telemetry by door ("" for unit-wide fields)
	queries       []url.Values                // of the telemetry requests
	alerts        map[string][]map[string]any // alerts by state asked ("open", "resolved"), beside fakeAlert
	commands      []map[string]any
	extraDevices  []string // fridges at oak, beside fridge-1 and bank-2
	// occupancy answers GET occupancy (by its query string: "units=false", "device=fridge-1") and
	// "parcels" GET occupancy/parcels; without it the hub keeps no parcels (503).
	occupancy map[string]any
}

// fakePoint is a history point, ago before the request.
type fakePoint struct {
	ago time.Duration
	v   float64
}

type fakeAnswer struct {
	status int
	body   string
}

const (
	viewerToken   = "lh_viewer_token"
	operatorToken = "lh_operator_token"
	// An alert summary that would run script if the dashboard wrote it as markup.
	hostileSummary = `door 1 forced <img src=x onerror="window.pwned=1">`
)

func newFakeAPI(t *testing.T) *fakeAPI {
	// Three windows an hour apart; door 2's compartment is above the 5 °C limit in one of them.
	hourly := func(v ...float64) []fakePoint {
		var out []fakePoint
		for i, x := range v {
			out = append(out, fakePoint{time.Duration(3-i) * time.Hour, x})
		}
		return out
	}
	return &fakeAPI{t: t, health: map[string]string{"fridge-1": "ok", "bank-2": "ok"}, events: make(chan string, 16),
		created: map[string]time.Time{}, history: map[string][]fakePoint{"1": hourly(3, 3.5, 4), "2": hourly(4, 6.5, 4.5), "": hourly(0.4, 0.5, 0.45)},
		alerts: map[string][]map[string]any{}}
}

func (f *fakeAPI) device(id string) map[string]any {
	kind, site, doors := "fridge", "oak", 2
	if id == "bank-2" {
		kind, site, doors = "locker-bank", "pine", 4
	}
	h := f.health[id]
	temp := 3.5
	created, ok := f.created[id]
	if !ok {
		created = time.Now().Add(-30 * 24 * time.Hour)
	}
	return map[string]any{"id": id, "kind": kind, "site": site, "doors": doors, "labels": map[string]string{}, "enabled": true,
		"created_at": created.UTC(),
		"presence":   map[string]any{"device": id, "online": h != "offline"}, "health": h,
		"live": map[string]any{"updated_at": time.Now().UTC(), "gaps": 0,
			"doors":    []map[string]any{{"door": 1, "open": false, "locked": true}},
			"snapshot": map[string]any{"v": 1, "seq": 1, "ts": time.Now().UnixMilli(), "doors": []map[string]any{{"door": 1, "temp_c": temp}}}}}
}

func (f *fakeAPI) healthSummary() map[string]any {
	var sites []map[string]any
	for _, site := range []string{"oak", "pine"} {
		id := map[string]string{"oak": "fridge-1", "pine": "bank-2"}[site]
		s := map[string]any{"site": site, "units": 1, "ok": 0, "warning": 0, "critical": 0, "offline": 0, "alerts_open": 1}
		s[f.health[id]] = 1
		sites = append(sites, s)
	}
	return map[string]any{"sites": sites, "total": map[string]any{"site": "*", "units": 2, "alerts_open": 2}}
}

var fakeAlert = map[string]any{"id": 7, "rule": "forced-entry", "severity": "critical", "scope": "door", "device": "fridge-1",
	"site": "oak", "door": 1, "state": "firing", "summary": hostileSummary, "fired_at": time.Now().Add(-12 * time.Minute).UTC()}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	operator := token == operatorToken
	p := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	f.mu.Lock()
	refused := token != viewerToken && !operator || f.revoked
	f.mu.Unlock()
	switch {
	case refused:
		apiError(w, 401, "unauthorized", "token revoked")
		return
	case p == "stream" && !operator:
		f.stream(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == "POST" && !operator:
		apiError(w, 403, "forbidden", "a viewer token may not do this: it needs technician")
	case p == "whoami":
		role := "viewer"
		if operator {
			role = "operator"
		}
		writeJSON(w, 200, map[string]any{"id": "t1", "name": "test", "role": role})
	case p == "alerts/7/ack":
		apiError(w, 409, "conflict", "alert 7 is not firing")
	case strings.HasSuffix(p, "/unlock"):
		var body struct{ Reason string }
		json.NewDecoder(r.Body).Decode(&body)
		f.unlocks = append(f.unlocks, body.Reason+"|"+r.Header.Get("Idempotency-Key"))
		a := f.unlockAnswers[0]
		f.unlockAnswers = f.unlockAnswers[1:]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	case p == "health":
		writeJSON(w, 200, f.healthSummary())
	case p == "devices":
		// As the hub filters: by health (any of a list) and a part of the id; a page holds them all.
		q := r.URL.Query()
		healths := strings.Split(q.Get("health"), ",")
		devices := []any{}
		for _, id := range append([]string{"bank-2", "fridge-1"}, f.extraDevices...) {
			if (q.Get("health") == "" || slices.Contains(healths, f.health[id])) && strings.Contains(id, q.Get("q")) {
				devices = append(devices, f.device(id))
			}
		}
		writeJSON(w, 200, map[string]any{"devices": devices, "total": len(devices)})
	case p == "devices/fridge-1" || p == "devices/bank-2":
		writeJSON(w, 200, f.device(strings.TrimPrefix(p, "devices/")))
	case p == "devices/fridge-1/telemetry":
		q := r.URL.Query()
		f.queries = append(f.queries, q)
		now := time.Now().UTC().Truncate(time.Second)
		from, _ := time.Parse(time.RFC3339, q.Get("from"))
		points := []map[string]any{}
		for _, x := range f.history[q.Get("door")] {
			if t := now.Add(-x.ago); !t.Before(from) {
				points = append(points, map[string]any{"t": t, "v": x.v})
			}
		}
		writeJSON(w, 200, map[string]any{"points": points})
	case p == "alerts":
		alerts := []any{}
		state := r.URL.Query().Get("state")
		if state != "resolved" {
			alerts = append(alerts, fakeAlert)
		}
		for _, a := range f.alerts[state] {
			alerts = append(alerts, a)
		}
		writeJSON(w, 200, map[string]any{"alerts": alerts})
	case p == "commands":
		writeJSON(w, 200, map[string]any{"commands": append([]map[string]any{}, f.commands...)})
	case strings.HasPrefix(p, "occupancy") && f.occupancy == nil: // as a hub without parcel custody answers
		apiError(w, 503, "unavailable", "parcel custody is not configured on this hub")
	case p == "occupancy":
		writeJSON(w, 200, f.occupancy[r.URL.RawQuery])
	case p == "occupancy/parcels":
		writeJSON(w, 200, f.occupancy["parcels"])
	default: // the operator's hub has no event stream
		http.NotFound(w, r)
	}
}

// stream serves the viewer's event stream: the state at connect, then the test's pieces, each
// flushed on its own, with CRLF line ends (which the standard allows and the hub does not use).
func (f *fakeAPI) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	flush := func(s string) {
		fmt.Fprint(w, s)
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond) // separate network reads
	}
	f.mu.Lock()
	first := sse("health", f.healthSummary()) + ": keepalive\r\n\r\n" + sse("device", f.device("fridge-1")) + sse("device", f.device("bank-2"))
	f.mu.Unlock()
	for _, piece := range splitAt(first, 3, 17, 64, 65) {
		flush(piece)
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case piece := <-f.events:
			flush(piece)
		}
	}
}

func sse(name string, v any) string {
	b, _ := json.Marshal(v)
	return "event: " + name + "\r\ndata: " + string(b) + "\r\n\r\n"
}

// splitAt cuts s at the given byte offsets.
func splitAt(s string, at ...int) []string {
	var out []string
	last := 0
	for _, i := range at {
		out = append(out, s[last:i])
		last = i
	}
	return append(out, s[last:])
}

// serveDashboard serves the dashboard and the fake API beside it, as the hub does.
func serveDashboard(t *testing.T, api http.Handler) string {
	dashboard := web.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			api.ServeHTTP(w, r)
			return
		}
		dashboard.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// A viewer on a hub with an event stream: updates and alerts arrive through the stream however
// it is cut, text from units stays text, and the actions of higher roles are not offered.
func TestDashboardStreamAndViewer(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)

	b.SignIn(url, viewerToken)
	b.Wait("the units from the stream", `document.getElementById('conn').dataset.state === 'live' && document.querySelectorAll('a.tile').length === 2`)
	if role := webtest.Eval[string](b, `document.getElementById('role').textContent`); role != "viewer" {
		t.Errorf("role %q, want viewer", role)
	}
	api.mu.Lock()
	api.health["fridge-1"] = "critical"
	update := sse("device", api.device("fridge-1"))
	api.mu.Unlock()
	for _, piece := range splitAt(update, 5, len(update)-3, len(update)-2) { // between \r and \n too
		api.events <- piece
	}
	b.Wait("fridge-1 critical, live", `document.querySelector('a.tile[data-device="fridge-1"]').dataset.health === 'critical'`)

	b.Do("the alerts page", chromedp.Click(chromedp.CSS(`nav a[data-nav="alerts"]`)))
	b.Wait("the alert", `document.querySelector('tr[data-alert-id="7"]')`)
	// A new alert through the stream, cut inside a multi-byte character.
	fired := map[string]any{"event": "fired", "alert": map[string]any{"id": 8, "rule": "door-ajar", "severity": "minor",
		"device": "bank-2", "site": "pine", "door": 3, "state": "firing", "summary": "Tür 3 offen ✓", "fired_at": time.Now().UTC()}}
	text := sse("alert", fired)
	cut := strings.Index(text, "✓") + 1
	for _, piece := range splitAt(text, cut) {
		api.events <- piece
	}
	b.Wait("the streamed alert", `document.querySelector('tr[data-alert-id="8"]')?.textContent.includes('Tür 3 offen ✓')`)
	if !webtest.Eval[bool](b, `document.querySelector('tr[data-alert-id="7"]').textContent.includes(`+jsString(hostileSummary)+`) && !document.querySelector('main img') && window.pwned === undefined`) {
		t.Error("an alert summary was not shown as plain text")
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll('[data-action]').length`); n != 0 {
		t.Errorf("a viewer is offered %d alert actions", n)
	}
	b.Do("a unit", chromedp.Navigate(url+"#/unit/fridge-1"), chromedp.WaitVisible(chromedp.CSS(`ul.doors li`)))
	if webtest.Eval[bool](b, `document.querySelector('form.unlock') !== null`) {
		t.Error("a viewer is offered the remote unlock")
	}
}

// An operator on a hub without an event stream: the dashboard polls, draws the history with
// the food-safety limit, says clearly what went wrong with an unlock or an acknowledgement, and
// goes back to the sign-in form when the token is revoked.
func TestDashboardPollingAndErrors(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	api.unlockAnswers = []fakeAnswer{
		{409, `{"error":{"code":"conflict","message":"device \"fridge-1\" is offline"}}`},
		{504, `{"error":{"code":"timeout","message":"the device did not answer before the command expired"}}`},
		{429, `{"error":{"code":"rate_limited","message":"more than 10 commands a minute for this device"}}`},
		{200, `{"command":{"id":"c1","device":"fridge-1","type":"unlock","door":2,"status":"failed","outcome":"jammed","detail":"latch did not move"},"latency_ms":812}`},
		{200, `{"command":{"id":"c2","device":"fridge-1","type":"unlock","door":2,"status":"succeeded","outcome":"already-open","detail":"door 2 was already open; the lock was not actuated"},"latency_ms":95}`},
	}
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)

	b.SignIn(url, operatorToken)
	b.Wait("polling", `document.getElementById('conn').dataset.state === 'polling' && document.getElementById('conn').textContent === 'Updating every 5 s'`)
	api.mu.Lock()
	api.health["bank-2"] = "offline"
	api.mu.Unlock()
	b.Wait("bank-2 offline after a poll", `document.querySelector('a.tile[data-device="bank-2"]')?.dataset.health === 'offline'`+
		` && document.querySelector('[data-site="pine"] [data-count="offline"] .n').textContent === '1'`)

	b.Do("the unit page", chromedp.Navigate(url+"#/unit/fridge-1"), chromedp.WaitVisible(chromedp.CSS(`form.unlock`)))
	b.Wait("the charts", `[...document.querySelectorAll('figure.chart')].every((f) => f.dataset.state === 'ready')`)
	summary := webtest.Eval[string](b, `document.querySelector('figure.chart').textContent`)
	for _, want := range []string{"Food-safety limit (5.0 °C)", "Door 2: latest 4.5 °C, lowest 4.0 °C, highest 6.5 °C; above 5.0 °C in 1 of 3 intervals"} {
		if !strings.Contains(summary, want) {
			t.Errorf("temperature chart lacks %q: %s", want, summary)
		}
	}

	for _, want := range []struct{ outcome, text string }{
		{"conflict", `Not sent: device "fridge-1" is offline`},
		{"expired", "Expired: fridge-1 did not answer in time"},
		{"error", "Too many requests (429): more than 10 commands a minute"},
		{"jammed", "Door 2 did not open: jammed (latch did not move), after 812 ms."},
		{"already-open", "Door 2 was already open; the lock was left as it was (95 ms)."},
	} {
		b.Do("unlock door 2",
			chromedp.SetValue(chromedp.CSS(`form.unlock select`), "2"),
			chromedp.SetValue(chromedp.CSS(`form.unlock input[name=reason]`), "courier"),
			chromedp.Click(chromedp.CSS(`form.unlock button[type=submit]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)),
			chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		b.Wait("the outcome "+want.outcome, `document.querySelector('.outcome').dataset.outcome === '`+want.outcome+`'`)
		if got := webtest.Eval[string](b, `document.querySelector('.outcome').textContent`); !strings.Contains(got, want.text) {
			t.Errorf("outcome %s: %q, want %q", want.outcome, got, want.text)
		}
	}
	if !webtest.Eval[bool](b, `document.querySelector('.outcome').classList.contains('outcome-ok')`) {
		t.Error("an unlock of a door already open is not shown as a success")
	}
	api.mu.Lock()
	for _, u := range api.unlocks {
		if reason, key, _ := strings.Cut(u, "|"); reason != "courier" || !strings.HasPrefix(key, "dash-") {
			t.Errorf("unlock request with reason %q and Idempotency-Key %q", reason, key)
		}
	}
	api.mu.Unlock()

	b.Do("acknowledge an alert that is no longer firing",
		chromedp.Click(chromedp.CSS(`tr[data-alert-id="7"] [data-action="ack"]`)),
		chromedp.SendKeys(chromedp.CSS(`dialog[open] textarea[name=note]`), "on my way"),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)))
	b.Wait("the refusal in the dialog", `document.querySelector('dialog[open] .error')?.textContent === 'Conflict (409): alert 7 is not firing'`)
	b.Do("close the dialog", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))

	api.mu.Lock()
	api.revoked = true
	api.mu.Unlock()
	b.Wait("the sign-in form after the token was revoked", `document.querySelector('input[name=token]') && document.querySelector('.signin [role=alert]')?.textContent.includes('The hub refused the token: token revoked')`)
	if webtest.Eval[bool](b, `sessionStorage.length !== 0`) {
		t.Error("the revoked token is still stored")
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
