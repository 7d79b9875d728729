package notify

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
)

// heads is a HeadReader whose head the test sets.
type heads struct {
	mu   sync.Mutex
	head fleet.AuditHead
	at   time.Time
	err  error
}

func (h *heads) Head(context.Context) (fleet.AuditHead, time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head, h.at, h.err
}

func (h *heads) set(seq int64, at time.Time, err error) fleet.AuditHead {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head, h.at, h.err = fleet.AuditHead{}, at, err
	if seq > 0 { // 0: the empty trail
		h.head = fleet.AuditHead{Seq: seq, Hash: strings.Repeat(string("0123456789abcdef"[seq%16]), 64)}
	}
	return h.head
}

// startWitness runs a witness of h with cfg until the test ends; its registry and logs are in
// the returned started.
func startWitness(t *testing.T, cfg WitnessConfig, h *heads) *started {
	t.Helper()
	s := &started{reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	w, err := NewWitness(cfg, h, WitnessOptions{Logger: slog.New(slog.NewTextHandler(s.logs, nil)), Registerer: s.reg, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		w.Run(ctx)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func witnessTo(url string, interval, resend time.Duration) WitnessConfig {
	return WitnessConfig{Interval: interval, ResendInterval: resend, URL: url, Secret: testSecret, Timeout: time.Second, Hub: "hub-a"}
}

// payload checks a witness request's signature with the secret and returns its body.
func payload(t *testing.T, r request) witnessPayload {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/witness" || r.header.Get("X-Lockerhub-Event") != "audit.head" {
		t.Errorf("got %s %s event %q, want POST /witness event audit.head", r.method, r.path, r.header.Get("X-Lockerhub-Event"))
	}
	if err := Verify([]byte(testSecret), r.header.Get("X-Lockerhub-Signature"), r.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("signature of %s: %v", r.body, err)
	}
	var p witnessPayload
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWitnessPostsChangedHead(t *testing.T) {
	srv, reqs := newReceiver(t, nil)
	var h heads
	at := time.Date(2026, 3, 1, 12, 0, 0, 120e6, time.UTC)
	first := h.set(41, at, nil)
	w := startWitness(t, witnessTo(srv.URL+"/witness", 10*time.Millisecond, time.Hour), &h)

	r := next(t, reqs)
	if p := payload(t, r); p.Version != 1 || p.Hub != "hub-a" || p.AuditHead != first || !p.Time.Equal(at) || p.SentAt == "" {
		t.Fatalf("payload %+v, want version 1 from hub-a with head %s appended at %s", p, first, at)
	}
	var raw map[string]any // the members as receivers see them
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "hub", "seq", "hash", "time", "sent_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload %s lacks %q", r.body, k)
		}
	}

	time.Sleep(100 * time.Millisecond) // 10 intervals
	if n := len(reqs); n != 0 {
		t.Fatalf("%d requests for an unchanged head within the resend interval", n)
	}
	at = at.Add(time.Second)
	second := h.set(42, at, nil)
	if p := payload(t, next(t, reqs)); p.AuditHead != second || !p.Time.Equal(at) {
		t.Fatalf("after the head moved to %s, posted %+v", second, p)
	}

	waitFor(t, "both requests counted", func() bool {
		return w.value(t, "lockerhub_audit_witness_requests_total", map[string]string{"result": "sent"}) == 2
	})
	if got := w.value(t, "lockerhub_audit_head_seq", nil); got != 42 {
		t.Errorf("lockerhub_audit_head_seq = %v, want 42", got)
	}
	if got, want := w.value(t, "lockerhub_audit_head_timestamp_seconds", nil), float64(at.UnixMilli())/1e3; got != want {
		t.Errorf("lockerhub_audit_head_timestamp_seconds = %v, want %v", got, want)
	}
	logs := w.logs.String()
	for _, want := range []string{`msg="audit head" seq=41 hash=` + first.Hash, `msg="audit head" seq=42 hash=` + second.Hash} {
		if strings.Count(logs, want) != 1 {
			t.Errorf("logs have %q %d times, want once:\n%s", want, strings.Count(logs, want), logs)
		}
	}
}

// A head unchanged for resend_interval is logged and posted again.
func TestWitnessResends(t *testing.T) {
	srv, reqs := newReceiver(t, nil)
	var h heads
	head := h.set(7, time.Now(), nil)
	const resend = 60 * time.Millisecond
	w := startWitness(t, witnessTo(srv.URL+"/witness", 10*time.Millisecond, resend), &h)
	a, b := next(t, reqs), next(t, reqs)
	if pa, pb := payload(t, a), payload(t, b); pa.AuditHead != head || pb.AuditHead != head {
		t.Fatalf("posted %s then %s, want %s twice", pa.AuditHead, pb.AuditHead, head)
	}
	// Half the resend interval leaves room for the requests' latencies, and is still three
	// intervals: a witness that posted an unchanged head every interval fails.
	if gap := b.at.Sub(a.at); gap < resend/2 {
		t.Fatalf("posted again after %s, before the resend interval %s", gap, resend)
	}
	waitFor(t, "the head logged again", func() bool { return strings.Count(w.logs.String(), `msg="audit head" seq=7`) >= 2 })
}

// A failed request is retried with backoff, long before the next interval, and carries the
// head as it is at the retry.
func TestWitnessRetries(t *testing.T) {
	var h heads
	h.set(1, time.Now(), nil)
	var second fleet.AuditHead
	srv, reqs := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			second = h.set(2, time.Now(), nil) // before the answer: the retry must see it
		}
		if n < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	w := startWitness(t, witnessTo(srv.URL+"/witness", time.Hour, time.Hour), &h)
	seqs := []int64{payload(t, next(t, reqs)).Seq, payload(t, next(t, reqs)).Seq, payload(t, next(t, reqs)).Seq}
	if seqs[0] != 1 || seqs[1] != second.Seq || seqs[2] != second.Seq {
		t.Fatalf("posted seqs %v, want 1, then the new head 2 on both retries", seqs)
	}
	waitFor(t, "the delivery to count", func() bool {
		return w.value(t, "lockerhub_audit_witness_requests_total", map[string]string{"result": "sent"}) == 1
	})
	if got := w.value(t, "lockerhub_audit_witness_requests_total", map[string]string{"result": "failed"}); got != 2 {
		t.Errorf("requests{failed} = %v, want 2", got)
	}
	if logs := w.logs.String(); strings.Count(logs, "audit head not delivered to the witness; retrying") != 2 {
		t.Errorf("logs lack the two failures:\n%s", logs)
	}
}

// Without a url the head is only logged and exported; a head that cannot be read is tried
// again, and one that moved back is an error in the log.
func TestWitnessLogsOnly(t *testing.T) {
	var h heads
	h.set(0, time.Time{}, errors.New("database is locked"))
	w := startWitness(t, WitnessConfig{Interval: 10 * time.Millisecond, ResendInterval: time.Hour, Timeout: time.Second}, &h)
	waitFor(t, "the read error logged", func() bool {
		return strings.Contains(w.logs.String(), `msg="audit head not read" error="database is locked"`)
	})

	h.set(0, time.Time{}, nil) // an empty trail
	waitFor(t, "the empty head logged", func() bool { return strings.Contains(w.logs.String(), `msg="audit head" seq=0 hash=""`) })
	if got := w.value(t, "lockerhub_audit_head_timestamp_seconds", nil); got != 0 {
		t.Errorf("lockerhub_audit_head_timestamp_seconds of an empty trail = %v, want 0", got)
	}
	h.set(5, time.Now(), nil)
	waitFor(t, "seq 5 exported", func() bool { return w.value(t, "lockerhub_audit_head_seq", nil) == 5 })
	if strings.Contains(w.logs.String(), "moved back") {
		t.Fatalf("a head moving forward logged as moved back:\n%s", w.logs.String())
	}
	h.set(3, time.Now(), nil)
	waitFor(t, "the head moving back logged", func() bool {
		return strings.Contains(w.logs.String(), `level=ERROR msg="audit head moved back: entries were cut from the end of the trail" seq=3`)
	})
	for _, result := range []string{"sent", "failed"} {
		if got := w.value(t, "lockerhub_audit_witness_requests_total", map[string]string{"result": result}); got != 0 {
			t.Errorf("requests{result=%q} = %v without a url, want 0", result, got)
		}
	}
	lintMetrics(t, w.reg)
}

func TestWitnessConfig(t *testing.T) {
	if err := DefaultWitnessConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	with := func(f func(*WitnessConfig)) WitnessConfig {
		c := witnessTo("https://witness.example.com/heads", time.Minute, 15*time.Minute)
		f(&c)
		return c
	}
	if err := with(func(*WitnessConfig) {}).Validate(); err != nil {
		t.Fatalf("a webhook: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  WitnessConfig
		want string
	}{
		{"interval too short", with(func(c *WitnessConfig) { c.Interval = time.Millisecond }), "audit.witness.interval"},
		{"interval too long", with(func(c *WitnessConfig) { c.Interval, c.ResendInterval = 2*time.Hour, 2*time.Hour }), "audit.witness.interval"},
		{"resend shorter than interval", with(func(c *WitnessConfig) { c.ResendInterval = time.Second }), "audit.witness.resend_interval"},
		{"no timeout", with(func(c *WitnessConfig) { c.Timeout = 0 }), "audit.witness.timeout"},
		{"secret without url", with(func(c *WitnessConfig) { c.URL = "" }), "audit.witness.secret"},
		{"url without secret", with(func(c *WitnessConfig) { c.Secret = "" }), "audit.witness.secret"},
		{"short secret", with(func(c *WitnessConfig) { c.Secret = "short" }), "audit.witness.secret"},
		{"relative url", with(func(c *WitnessConfig) { c.URL = "/heads" }), "audit.witness.url"},
		{"not http", with(func(c *WitnessConfig) { c.URL = "ftp://witness.example.com/" }), "audit.witness.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
			if _, err := NewWitness(tc.cfg, &heads{}, WitnessOptions{}); err == nil {
				t.Fatal("NewWitness accepted it")
			}
		})
	}
}
