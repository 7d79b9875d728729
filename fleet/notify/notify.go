// Package notify sends alert lifecycle changes (fired, acknowledged, resolved) to HTTP
// receivers: generic webhooks, signed with HMAC-SHA256, and Prometheus Alertmanager's v2 API.
//
// Each sender has its own bounded queue and goroutine, so a slow or dead receiver delays only
// itself, and Notify never blocks the alert engine. A delivery is retried with exponential
// backoff on network errors, 5xx and 429 (honouring Retry-After); other 4xx answers are
// permanent. What a sender gives up on, or cannot even queue, is dead-lettered: counted in
// lockerhub_alert_notifications_total{result="dead"} and logged with the alert.
//
// Alertmanager considers an alert resolved when it is not re-sent within its resolve_timeout,
// so the Alertmanager sender re-posts every open alert each ResendInterval, as Prometheus does.
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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
)

// Defaults for unset sender settings.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultMaxAttempts    = 6
	DefaultResendInterval = time.Minute
	defaultBackoff        = time.Second
	maxBackoff            = time.Minute
	queueSize             = 1024
	minSecretLen          = 16
)

// Config is the `notify:` section of the alert configuration.
type Config struct {
	Webhooks     []WebhookConfig      `mapstructure:"webhooks"`
	Alertmanager []AlertmanagerConfig `mapstructure:"alertmanager"`
}

// Sender settings common to both kinds.
type senderConfig struct {
	Name        string           `mapstructure:"name"`         // in metrics and logs; default "<kind>-<index>"
	URL         string           `mapstructure:"url"`          // absolute http(s) URL
	Severities  []fleet.Severity `mapstructure:"severities"`   // empty: all
	Timeout     time.Duration    `mapstructure:"timeout"`      // per attempt; default 5s
	MaxAttempts int              `mapstructure:"max_attempts"` // default 6
}

// WebhookConfig is a generic webhook receiver.
type WebhookConfig struct {
	senderConfig `mapstructure:",squash"`
	Secret       string `mapstructure:"secret"` // HMAC-SHA256 key, at least 16 bytes
}

// AlertmanagerConfig is a Prometheus Alertmanager; alerts are posted to {URL}/api/v2/alerts.
type AlertmanagerConfig struct {
	senderConfig   `mapstructure:",squash"`
	ResendInterval time.Duration `mapstructure:"resend_interval"` // default 1m
}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("notify.webhooks[%d]", i)
		if err := w.validate(key); err != nil {
			return err
		}
		if len(w.Secret) < minSecretLen {
			return fmt.Errorf("%s.secret: at least %d bytes, so that signatures cannot be forged", key, minSecretLen)
		}
	}
	for i, a := range c.Alertmanager {
		key := fmt.Sprintf("notify.alertmanager[%d]", i)
		if err := a.validate(key); err != nil {
			return err
		}
		if a.ResendInterval < 0 {
			return fmt.Errorf("%s.resend_interval: must not be negative", key)
		}
	}
	return nil
}

func (s senderConfig) validate(key string) error {
	u, err := url.Parse(s.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%s.url: %q is not an absolute http or https URL", key, s.URL)
	case s.Timeout < 0 || s.MaxAttempts < 0:
		return fmt.Errorf("%s: timeout and max_attempts must not be negative", key)
	}
	for _, sev := range s.Severities {
		if err := sev.Validate(); err != nil {
			return fmt.Errorf("%s.severities: %w", key, err)
		}
	}
	return nil
}

// Options carries the notifier's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// OpenAlerts lists the open alerts, for the Alertmanager re-sends.
	OpenAlerts func(ctx context.Context) ([]*fleet.Alert, error)
	// ExternalURL is the hub's base URL as people reach it, for links back to an alert.
	ExternalURL string
	// Backoff is the first retry delay, doubling up to a minute; default 1s.
	Backoff time.Duration
}

// Notifier delivers alert events to every configured sender.
type Notifier struct {
	senders    []*sender
	openAlerts func(ctx context.Context) ([]*fleet.Alert, error)
	log        *slog.Logger
	metrics    *metrics
}

// sender is one receiver with its queue.
type sender struct {
	name        string
	url         string
	severities  []fleet.Severity
	maxAttempts int
	backoff     time.Duration
	client      *http.Client
	queue       chan fleet.AlertEvent
	// encode turns events into a request body and headers.
	encode func(events []fleet.AlertEvent, now time.Time) ([]byte, http.Header, error)
	resend time.Duration // Alertmanager: re-post open alerts this often; 0 for webhooks
}

// New returns a notifier for cfg, which must be valid.
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Backoff <= 0 {
		opts.Backoff = defaultBackoff
	}
	n := &Notifier{log: opts.Logger}
	var err error
	if n.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("register notification metrics: %w", err)
	}
	add := func(kind string, i int, c senderConfig) *sender {
		s := &sender{name: c.Name, url: c.URL, severities: c.Severities, maxAttempts: c.MaxAttempts, backoff: opts.Backoff,
			client: &http.Client{Timeout: c.Timeout}, queue: make(chan fleet.AlertEvent, queueSize)}
		if s.name == "" {
			s.name = fmt.Sprintf("%s-%d", kind, i)
		}
		if s.maxAttempts == 0 {
			s.maxAttempts = DefaultMaxAttempts
		}
		if c.Timeout == 0 {
			s.client.Timeout = DefaultTimeout
		}
		n.senders = append(n.senders, s)
		return s
	}
	for i, w := range cfg.Webhooks {
		secret := []byte(w.Secret)
		add("webhook", i, w.senderConfig).encode = func(events []fleet.AlertEvent, now time.Time) ([]byte, http.Header, error) {
			return webhookRequest(secret, events[0], now)
		}
	}
	for i, a := range cfg.Alertmanager {
		s := add("alertmanager", i, a.senderConfig)
		s.url = a.URL + "/api/v2/alerts"
		s.resend = a.ResendInterval
		if s.resend == 0 {
			s.resend = DefaultResendInterval
		}
		s.encode = func(events []fleet.AlertEvent, _ time.Time) ([]byte, http.Header, error) {
			return alertmanagerRequest(events, opts.ExternalURL)
		}
	}
	for _, s := range n.senders {
		n.metrics.queue.WithLabelValues(s.name).Set(0)
		for _, result := range []string{"sent", "retried", "dead"} {
			n.metrics.total.WithLabelValues(s.name, result)
		}
	}
	n.openAlerts = opts.OpenAlerts
	return n, nil
}

// Notify queues ev for every sender that takes its severity. It never blocks: an event a full
// queue cannot take is dead-lettered.
func (n *Notifier) Notify(ev fleet.AlertEvent) {
	for _, s := range n.senders {
		if len(s.severities) > 0 && !slices.Contains(s.severities, ev.Alert.Severity) {
			continue
		}
		select {
		case s.queue <- ev:
			n.metrics.queue.WithLabelValues(s.name).Set(float64(len(s.queue)))
		default:
			n.dead(s, ev.Alert, errors.New("queue full: the receiver is too slow or down"))
		}
	}
}

// Run delivers until ctx is done and returns when every sender has stopped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range n.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.run(ctx, s)
		}()
	}
	wg.Wait()
}

func (n *Notifier) run(ctx context.Context, s *sender) {
	var resend <-chan time.Time
	if s.resend > 0 && n.openAlerts != nil {
		t := time.NewTicker(s.resend)
		defer t.Stop()
		resend = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.queue:
			n.metrics.queue.WithLabelValues(s.name).Set(float64(len(s.queue)))
			n.send(ctx, s, []fleet.AlertEvent{ev})
		case <-resend:
			n.resendOpen(ctx, s)
		}
	}
}

// resendOpen re-posts the open alerts that s takes, in one request.
func (n *Notifier) resendOpen(ctx context.Context, s *sender) {
	open, err := n.openAlerts(ctx)
	if err != nil {
		n.log.Error("alert notifications: open alerts not re-sent", "sender", s.name, "error", err)
		return
	}
	var events []fleet.AlertEvent
	for _, a := range open {
		if len(s.severities) == 0 || slices.Contains(s.severities, a.Severity) {
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: *a})
		}
	}
	if len(events) > 0 {
		n.send(ctx, s, events)
	}
}

// send delivers events in one request, retrying as the package doc says.
func (n *Notifier) send(ctx context.Context, s *sender, events []fleet.AlertEvent) {
	delay := s.backoff
	var last error
	for attempt := 1; attempt <= s.maxAttempts; attempt++ {
		retryAfter, err := s.post(ctx, events)
		if err == nil {
			n.metrics.total.WithLabelValues(s.name, "sent").Inc()
			return
		}
		last = err
		var perm permanentError
		if errors.As(err, &perm) || attempt == s.maxAttempts || ctx.Err() != nil {
			break
		}
		n.metrics.total.WithLabelValues(s.name, "retried").Inc()
		wait := max(delay, retryAfter)
		select {
		case <-ctx.Done():
			last = ctx.Err()
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		delay = min(2*delay, maxBackoff)
	}
	for _, ev := range events {
		n.dead(s, ev.Alert, last)
	}
}

// permanentError is an answer that retrying will not change.
type permanentError struct{ error }

// post makes one attempt; it returns the receiver's Retry-After, if any, with a retryable error.
func (s *sender) post(ctx context.Context, events []fleet.AlertEvent) (time.Duration, error) {
	body, header, err := s.encode(events, time.Now())
	if err != nil {
		return 0, permanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lockerhub")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusTooManyRequests || code >= 500:
		var after time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			after = min(time.Duration(secs)*time.Second, maxBackoff)
		}
		return after, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return 0, permanentError{fmt.Errorf("receiver answered %s", resp.Status)}
	}
}

func (n *Notifier) dead(s *sender, a fleet.Alert, err error) {
	n.metrics.total.WithLabelValues(s.name, "dead").Inc()
	n.log.Error("alert notification given up", "sender", s.name, "alert", a.ID, "rule", a.Rule, "device", a.DeviceID, "error", err)
}

type metrics struct {
	total *prometheus.CounterVec
	queue *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_alert_notifications_total",
			Help: "Alert notification deliveries by sender and result: sent, retried (one per failed attempt that is tried again) or dead (given up).",
		}, []string{"sender", "result"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockerhub_alert_notification_queue",
			Help: "Alert events waiting to be sent, by sender.",
		}, []string{"sender"}),
	}
	for _, c := range []prometheus.Collector{m.total, m.queue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
