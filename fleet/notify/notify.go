// Package notify delivers alert lifecycle events (fired, acknowledged, resolved) to HTTP
// receivers: generic webhooks, whose requests are signed with HMAC-SHA256, and Prometheus
// Alertmanager through its v2 API. It also tells the outside world the audit trail's head
// (Witness).
//
// # Queues
//
// Every receiver has a sender with its own bounded queue and goroutine. Notify only puts the
// event on the queue of each sender whose severities match, so the alert engine that calls it
// never waits for the network, and a receiver that is slow or down holds up its own queue
// and no other. A sender delivers its events one at a time, in order, retrying network
// errors, 429 and 5xx with exponential backoff; any other answer but 2xx is final. An event
// that finds the queue full, fails for good or is still queued when Run stops is
// dead-lettered: counted in lockerhub_alert_notifications_total{result="dead"} and logged
// with its alert, so that an operator knows which notifications were lost.
//
// # Webhook signatures
//
// A webhook request carries X-Lockerhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">. The timestamp is inside the MAC, so it cannot be changed without the
// secret, and a receiver that checks it with Verify refuses a captured request replayed
// outside its tolerance. Each attempt is signed anew, so a retry after a long backoff is as
// fresh as the first attempt.
//
// # Alertmanager re-sends
//
// Alertmanager considers an alert posted without endsAt firing only until its
// resolve_timeout (5m by default) after it was last posted, and it keeps alerts in memory
// only; Prometheus therefore posts its firing alerts again and again, and so does the
// Alertmanager sender: every resend_interval it posts all open alerts (Options.OpenAlerts)
// in one request. An alert open for hours thus stays open in Alertmanager, including across
// Alertmanager restarts. The re-send runs on the sender's goroutine between events, so it
// cannot overtake the resolution of an alert it lists.
//
// # Audit head witness
//
// Whoever can write the database can cut entries off the end of the audit trail and rewind
// its head, and the chain left verifies; only a head recorded outside the store shows it
// (fleet.AuditHead). Every audit.witness.interval the Witness reads the head, sets
// lockerhub_audit_head_seq and lockerhub_audit_head_timestamp_seconds, and when the head
// changed, or resend_interval after it was last published, logs it ("audit head", keys seq
// and hash) and POSTs it to the configured URL, signed as webhooks are, with event
// "audit.head". Unlike an alert event, a head is worth only its latest value: there is no
// queue, a failed request is retried with backoff with the head as it is by then, and never
// given up on. It runs on its own goroutine, so a slow receiver delays only the witness.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
)

// queueSize bounds each sender's queue: enough for a burst of alerts from a site-wide outage
// while a receiver is retrying, small enough that a dead receiver costs little memory.
const queueSize = 1024

// Backoff bounds: the first retry waits Options.Backoff (default defaultBackoff), every
// further one twice as long, never more than maxBackoff, which also caps Retry-After.
const (
	defaultBackoff = time.Second
	maxBackoff     = time.Minute
)

// retryPolicy is the backoff of requests to a receiver whose first retry waits first. No
// jitter: a receiver hears from the few hubs of a cluster at most, one request at a time each.
func retryPolicy(first time.Duration) backoff.Policy {
	return backoff.Policy{Min: orDefault(first, defaultBackoff), Max: maxBackoff}
}

// Options carries the notifier's collaborators.
type Options struct {
	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // default: a private registry
	// OpenAlerts returns the open alerts, for Alertmanager re-sends; required when
	// Alertmanagers are configured.
	OpenAlerts func(ctx context.Context) ([]*fleet.Alert, error)
	// ExternalURL is the hub's base URL as people reach it, such as https://hub.example.com;
	// when set, Alertmanager alerts link to the alert in the hub's API.
	ExternalURL string
	// Backoff is the delay before the first retry, doubling for every further one up to one
	// minute; default one second.
	Backoff time.Duration
}

// Notifier sends alert events to the configured receivers. Create it with New, call Run, and
// give it events with Notify, or subscribe it to the hub's events (HandleEvent).
type Notifier struct {
	senders []*sender
}

// New returns a notifier for cfg, which Validate must accept; zero settings take their
// defaults (DefaultTimeout, DefaultMaxAttempts, DefaultResendInterval, "webhook-<index>",
// "alertmanager-<index>").
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	external := strings.TrimSuffix(opts.ExternalURL, "/")
	if external != "" {
		if u, err := url.Parse(external); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("notify: invalid external URL %q: want http(s)://host", opts.ExternalURL)
		}
	}
	if len(cfg.Alertmanager) > 0 && opts.OpenAlerts == nil {
		return nil, errors.New("notify: Options.OpenAlerts is required to re-send open alerts to Alertmanager")
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	client := newClient()
	newSender := func(name string, severities []fleet.Severity, timeout time.Duration, maxAttempts int) *sender {
		return &sender{name: name, severities: severities, queue: make(chan fleet.AlertEvent, queueSize),
			poster: poster{client: client, timeout: orDefault(timeout, DefaultTimeout)}, maxAttempts: orDefault(maxAttempts, DefaultMaxAttempts),
			retries: retryPolicy(opts.Backoff), log: opts.Logger}
	}
	n := &Notifier{}
	for i, c := range cfg.Webhooks {
		s := newSender(webhookName(i, c.Name), c.Severities, c.Timeout, c.MaxAttempts)
		s.event = (&webhook{url: c.URL, secret: []byte(c.Secret)}).delivery
		n.senders = append(n.senders, s)
	}
	for i, c := range cfg.Alertmanager {
		s := newSender(alertmanagerName(i, c.Name), c.Severities, c.Timeout, c.MaxAttempts)
		am := &alertmanager{url: strings.TrimSuffix(c.URL, "/") + "/api/v2/alerts", external: external, open: opts.OpenAlerts}
		s.event = am.delivery
		s.resend = func(ctx context.Context) (delivery, bool) { return am.resend(ctx, s) }
		s.resendEvery = orDefault(c.ResendInterval, DefaultResendInterval)
		n.senders = append(n.senders, s)
	}
	counter, err := registerMetrics(opts.Registerer, n.senders)
	if err != nil {
		return nil, fmt.Errorf("register notification metrics: %w", err)
	}
	for _, s := range n.senders {
		s.results = counter
	}
	return n, nil
}

// Notify queues ev for every sender whose severities it matches. It never blocks: when a
// sender's queue is full the event is dead-lettered for that sender.
func (n *Notifier) Notify(ev fleet.AlertEvent) {
	for _, s := range n.senders {
		s.enqueue(ev)
	}
}

// HandleEvent notifies the alert changes this hub made; it implements fleet.EventHandler.
// Changes another hub of the cluster made (Mirrored) are that hub's to notify.
func (n *Notifier) HandleEvent(ev fleet.Event) {
	if ev.Kind == fleet.EventAlertChanged && !ev.Mirrored {
		n.Notify(ev.Alert)
	}
}

// Run delivers the queued events until ctx is done, and returns when every sender stopped.
// Events still queued then are dead-lettered; events notified after Run returned stay queued
// and are not delivered. Call it once.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range n.senders {
		wg.Go(func() { s.run(ctx) })
	}
	<-ctx.Done() // also without senders, so that Run always lasts as long as ctx
	wg.Wait()
}

// delivery is one notification request, with its retries.
type delivery struct {
	// request makes the HTTP request, anew for each attempt; an error is permanent.
	request func(ctx context.Context) (*http.Request, error)
	// about says what is delivered, as slog attributes, for the logs.
	about []any
}

// sender delivers to one receiver from its own queue, one delivery at a time.
type sender struct {
	name       string
	severities []fleet.Severity // empty: all
	queue      chan fleet.AlertEvent
	poster
	maxAttempts int
	retries     backoff.Policy
	log         *slog.Logger
	results     *prometheus.CounterVec // by sender and result

	event func(ev fleet.AlertEvent) delivery
	// resend, when not nil, is called every resendEvery for what must be posted again; false
	// when there is nothing to post.
	resend      func(ctx context.Context) (delivery, bool)
	resendEvery time.Duration
}

// Results of a delivery attempt, the result label of lockerhub_alert_notifications_total.
const (
	resultSent    = "sent"
	resultRetried = "retried"
	resultDead    = "dead"
)

func (s *sender) wants(sev fleet.Severity) bool {
	return len(s.severities) == 0 || slices.Contains(s.severities, sev)
}

func (s *sender) enqueue(ev fleet.AlertEvent) {
	if !s.wants(ev.Alert.Severity) {
		return
	}
	select {
	case s.queue <- ev:
	default:
		s.deadLetter(eventAttrs(ev), fmt.Errorf("queue full (%d events waiting)", queueSize))
	}
}

func (s *sender) run(ctx context.Context) {
	var tick <-chan time.Time
	if s.resend != nil {
		t := time.NewTicker(s.resendEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		// Checked first: select picks at random among ready cases, and a sender that has
		// stopped must not start another delivery.
		if ctx.Err() != nil {
			s.drop(ctx.Err())
			return
		}
		select {
		case <-ctx.Done():
		case ev := <-s.queue:
			s.deliver(ctx, s.event(ev))
		case <-tick:
			if d, ok := s.resend(ctx); ok {
				s.deliver(ctx, d)
			}
		}
	}
}

// drop dead-letters the events left in the queue when the sender stops.
func (s *sender) drop(cause error) {
	for {
		select {
		case ev := <-s.queue:
			s.deadLetter(eventAttrs(ev), fmt.Errorf("not sent before the hub stopped: %w", cause))
		default:
			return
		}
	}
}

// deliver sends d, retrying what may succeed later, and dead-letters it when it cannot.
func (s *sender) deliver(ctx context.Context, d delivery) {
	for attempt := 1; ; attempt++ {
		retry, err := s.attempt(ctx, d)
		if err == nil {
			s.results.WithLabelValues(s.name, resultSent).Inc()
			return
		}
		if !retry || attempt >= s.maxAttempts || ctx.Err() != nil {
			s.deadLetter(d.about, fmt.Errorf("attempt %d of %d: %w", attempt, s.maxAttempts, err))
			return
		}
		wait := s.retries.Wait(attempt, err)
		s.results.WithLabelValues(s.name, resultRetried).Inc()
		s.log.Warn("alert notification failed; retrying", append([]any{"sender", s.name, "attempt", attempt, "retry_in", wait, "error", err}, d.about...)...)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.deadLetter(d.about, fmt.Errorf("attempt %d of %d: %w; stopped before the retry", attempt, s.maxAttempts, err))
			return
		case <-t.C:
		}
	}
}

// newClient returns the HTTP client of every receiver. A redirect would turn the POST into a
// GET or send the signed request somewhere else: the 3xx is taken as the (permanent) answer
// instead.
func newClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// poster makes the requests to one receiver, each within timeout.
type poster struct {
	client  *http.Client
	timeout time.Duration // per attempt
}

// attempt makes one request. retry says whether the error may pass (network errors, 429,
// 5xx); the error wraps a *backoff.RetryAfter when the receiver said when to try again.
func (p poster) attempt(ctx context.Context, d delivery) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := d.request(ctx)
	if err != nil {
		return false, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	// Part of the body says why a request was refused; the rest is read so that the
	// connection can be reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		if after := parseRetryAfter(resp.Header.Get("Retry-After")); after > 0 {
			err = &backoff.RetryAfter{Err: err, After: after}
		}
		return true, err
	}
	return false, err
}

// parseRetryAfter reads a Retry-After in seconds; 0 when absent or not in seconds.
func parseRetryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil || secs < 0:
		return 0
	case secs > int(maxBackoff/time.Second): // also keeps the multiplication from overflowing
		return maxBackoff
	}
	return time.Duration(secs) * time.Second
}

func (s *sender) deadLetter(about []any, err error) {
	s.log.Error("alert notification dead-lettered", append([]any{"sender", s.name, "error", err}, about...)...)
	s.results.WithLabelValues(s.name, resultDead).Inc()
}

// eventAttrs describes ev for the logs.
func eventAttrs(ev fleet.AlertEvent) []any {
	return []any{"event", ev.Kind, "alert", ev.Alert.ID, "rule", ev.Alert.Rule, "device", ev.Alert.DeviceID, "door", ev.Alert.Door}
}

// newJSONRequest returns a POST of body with the headers every receiver gets.
func newJSONRequest(ctx context.Context, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lockerhub")
	return req, nil
}
