package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
)

// request is what a test receiver got.
type request struct {
	method, path string
	header       http.Header
	body         []byte
	at           time.Time
}

// newReceiver starts an HTTP server that records every request on the returned channel and
// answers the n-th (from 0) with respond, or 200 when respond is nil.
func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan request) {
	t.Helper()
	reqs := make(chan request, 256)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		select {
		case reqs <- request{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()}:
		default:
			t.Errorf("receiver: more than %d requests", cap(reqs))
		}
		if respond != nil {
			respond(i, w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

// statuses answers the n-th request with codes[n], and every later one with the last code.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes)-1)])
	}
}

// started is a notifier running until the test ends.
type started struct {
	*Notifier
	reg    *prometheus.Registry
	logs   *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

func start(t *testing.T, cfg Config, opts Options) *started {
	t.Helper()
	s := &started{reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	opts.Registerer = s.reg
	opts.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	n, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Notifier = n
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		n.Run(ctx)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels Run and waits for it to return.
func (s *started) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// count returns lockerhub_alert_notifications_total{sender, result}.
func (s *started) count(t *testing.T, sender, result string) float64 {
	t.Helper()
	return s.value(t, "lockerhub_alert_notifications_total", map[string]string{"sender": sender, "result": result})
}

// value returns the value of the series of family name with the given labels, failing the
// test when there is none.
func (s *started) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := make(map[string]string)
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// next returns the next request a receiver got.
func next(t *testing.T, reqs <-chan request) request {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a request")
		return request{}
	}
}

var firedAt = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func testAlert(id int64, sev fleet.Severity) fleet.Alert {
	return fleet.Alert{ID: id, Rule: "cold-holding", Severity: sev, Scope: fleet.ScopeCompartment, DeviceID: "oak-01",
		Site: "oak", Door: 3, State: fleet.AlertFiring, Summary: "compartment 3 at 6.2 °C, above 5 °C", FiredAt: firedAt}
}

func fired(id int64, sev fleet.Severity) fleet.AlertEvent {
	return fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: testAlert(id, sev)}
}

func noOpenAlerts(context.Context) ([]*fleet.Alert, error) { return nil, nil }

func webhookTo(srv *httptest.Server, name string, sev ...fleet.Severity) WebhookConfig {
	return WebhookConfig{Name: name, URL: srv.URL + "/hook", Secret: testSecret, Severities: sev, MaxAttempts: 3}
}

func TestSeverityFilter(t *testing.T) {
	criticalSrv, critical := newReceiver(t, nil)
	allSrv, all := newReceiver(t, nil)
	n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(criticalSrv, "critical", fleet.SeverityCritical), webhookTo(allSrv, "all")}}, Options{})

	n.Notify(fired(1, fleet.SeverityWarning))
	n.Notify(fired(2, fleet.SeverityCritical))

	alertID := func(r request) int64 {
		var p webhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p.Alert.ID
	}
	// Each sender delivers in order: had the warning reached the critical-only sender, it
	// would come first.
	if id := alertID(next(t, critical)); id != 2 {
		t.Fatalf("critical-only sender got alert %d first, want 2", id)
	}
	for _, want := range []int64{1, 2} {
		if id := alertID(next(t, all)); id != want {
			t.Fatalf("sender without severities got alert %d, want %d", id, want)
		}
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name                string
		respond             func(int, http.ResponseWriter, *http.Request)
		requests            int
		sent, retried, dead float64
	}{
		{name: "503 twice then 200", respond: statuses(503, 503, 200), requests: 3, sent: 1, retried: 2},
		{name: "429 then 200", respond: statuses(429, 200), requests: 2, sent: 1, retried: 1},
		{name: "400 is permanent", respond: statuses(400), requests: 1, dead: 1},
		{name: "redirect is permanent", respond: func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, requests: 1, dead: 1},
		{name: "always 500", respond: statuses(500), requests: 3, retried: 2, dead: 1},
		{name: "connection dropped", respond: func(_ int, w http.ResponseWriter, _ *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, requests: 3, retried: 2, dead: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reqs := newReceiver(t, tc.respond)
			n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(srv, "ops")}}, Options{})
			n.Notify(fired(42, fleet.SeverityMajor))

			waitFor(t, "the delivery to finish", func() bool { return n.count(t, "ops", "sent")+n.count(t, "ops", "dead") > 0 })
			if len(reqs) != tc.requests {
				t.Errorf("%d requests, want %d", len(reqs), tc.requests)
			}
			for result, want := range map[string]float64{"sent": tc.sent, "retried": tc.retried, "dead": tc.dead} {
				if got := n.count(t, "ops", result); got != want {
					t.Errorf("notifications{result=%q} = %v, want %v", result, got, want)
				}
			}
			if tc.dead > 0 {
				logs := n.logs.String()
				for _, want := range []string{"dead-lettered", "sender=ops", "alert=42", "rule=cold-holding", "device=oak-01", "error="} {
					if !strings.Contains(logs, want) {
						t.Errorf("dead-letter log lacks %q:\n%s", want, logs)
					}
				}
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv, reqs := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(srv, "ops")}}, Options{}) // backoff 1ms
	n.Notify(fired(1, fleet.SeverityMajor))

	first, second := next(t, reqs), next(t, reqs)
	if gap := second.at.Sub(first.at); gap < time.Second {
		t.Fatalf("retried after %s, want at least the 1s of Retry-After", gap)
	}
	waitFor(t, "the delivery", func() bool { return n.count(t, "ops", "sent") == 1 })
}

// Retries double from one second up to maxBackoff, which also caps the receiver's Retry-After
// (in seconds; a date is ignored).
func TestRetryDelay(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "2": 2 * time.Second, " 3 ": 3 * time.Second, "-1": 0,
		"Wed, 21 Oct 2015 07:28:00 GMT": 0, "99999999999999999999": 0, "86400": time.Minute} {
		if got := parseRetryAfter(v); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
	p := retryPolicy(0)
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {100, time.Minute}} {
		if got := p.Delay(tc.attempt); got != tc.want {
			t.Errorf("retryPolicy(0).Delay(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	srv, reqs := newReceiver(t, statuses(503))
	n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(srv, "ops")}}, Options{Backoff: time.Hour})
	n.Notify(fired(1, fleet.SeverityMajor))
	next(t, reqs)
	waitFor(t, "the retry to be scheduled", func() bool { return n.count(t, "ops", "retried") == 1 })

	n.stop(t) // fails unless Run returns promptly, long before the hour's backoff
	if got := n.count(t, "ops", "dead"); got != 1 {
		t.Fatalf("dead = %v, want 1", got)
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	hung := make(chan struct{})
	release := make(chan struct{})
	srv, _ := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		close(hung)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handler
	cfg := Config{Webhooks: []WebhookConfig{webhookTo(srv, "slow")}}
	cfg.Webhooks[0].Timeout = time.Hour
	n := start(t, cfg, Options{})

	n.Notify(fired(0, fleet.SeverityMajor))
	<-hung // the sender is stuck in this delivery and takes no more from its queue

	const extra = 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range queueSize + extra {
			n.Notify(fired(int64(i+1), fleet.SeverityMajor))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked on a receiver that hangs")
	}
	if got := n.count(t, "slow", "dead"); got != extra {
		t.Errorf("dead = %v, want %d dropped with a full queue", got, extra)
	}
	if got := n.value(t, "lockerhub_alert_notification_queue", map[string]string{"sender": "slow"}); got != queueSize {
		t.Errorf("queue = %v, want %d", got, queueSize)
	}

	// Stopping abandons the hanging delivery and dead-letters what is still queued.
	n.stop(t)
	if got, want := n.count(t, "slow", "dead"), float64(extra+1+queueSize); got != want {
		t.Errorf("dead after stop = %v, want %v", got, want)
	}
}

func TestMetrics(t *testing.T) {
	n := start(t, Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1:1/", Secret: testSecret}},
		Alertmanager: []AlertmanagerConfig{{Name: "am", URL: "http://127.0.0.1:1"}}}, Options{OpenAlerts: noOpenAlerts})
	lintMetrics(t, n.reg)
	// Every series exists from the start, so that "nothing lost" reads as 0.
	for _, sender := range []string{"webhook-0", "am"} {
		for _, result := range []string{"sent", "retried", "dead"} {
			if got := n.count(t, sender, result); got != 0 {
				t.Errorf("notifications{sender=%q,result=%q} = %v, want 0", sender, result, got)
			}
		}
		if got := n.value(t, "lockerhub_alert_notification_queue", map[string]string{"sender": sender}); got != 0 {
			t.Errorf("queue{sender=%q} = %v, want 0", sender, got)
		}
	}
}

// lintMetrics fails t for every metric of g that promlint finds fault with.
func lintMetrics(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// Subscribed to the hub's events, a notifier sends the alert changes this hub made, and leaves
// those another hub of the cluster made (and other events) to others.
func TestHandleEventNotifiesOnlyThisHubsAlertChanges(t *testing.T) {
	srv, reqs := newReceiver(t, nil)
	n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(srv, "ops")}}, Options{})
	n.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Mirrored: true, Alert: fired(1, fleet.SeverityMajor)})
	n.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged})
	n.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fired(2, fleet.SeverityMajor)})
	var p webhookPayload
	if err := json.Unmarshal(next(t, reqs).body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Alert.ID != 2 {
		t.Fatalf("notified alert %d first, want 2: the mirrored alert 1 is not this hub's to notify", p.Alert.ID)
	}
}
