package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
)

// WitnessEvent is the event header of the requests that carry the audit head.
const WitnessEvent = "audit.head"

// WitnessConfig is the audit.witness section of the hub's configuration: how often the hub
// reads the audit trail's head, and where it posts it.
type WitnessConfig struct {
	// Interval is how often the head is read, exported as metrics, and logged and posted if
	// it changed. 10ms..1h.
	Interval time.Duration `mapstructure:"interval"`
	// ResendInterval is how long an unchanged head goes without being logged and posted again,
	// so that a receiver can tell a quiet trail from a hub that stopped witnessing. At least
	// Interval.
	ResendInterval time.Duration `mapstructure:"resend_interval"`
	// URL is where the head is POSTed, signed: an absolute http or https URL; empty for
	// logs and metrics only.
	URL string `mapstructure:"url"`
	// Secret is the HMAC-SHA256 key the requests are signed with, at least MinSecretLen bytes;
	// required with URL.
	Secret string `mapstructure:"secret"`
	// Timeout bounds one request.
	Timeout time.Duration `mapstructure:"timeout"`
	// Hub names the hub in the requests; empty for the host name.
	Hub string `mapstructure:"hub"`
}

// DefaultWitnessConfig returns the settings used when the configuration sets none: logs and
// metrics every minute, no webhook.
func DefaultWitnessConfig() WitnessConfig {
	return WitnessConfig{Interval: time.Minute, ResendInterval: 15 * time.Minute, Timeout: DefaultTimeout}
}

// Validate reports the first bad setting, naming its key (audit.witness.url, ...).
func (c WitnessConfig) Validate() error {
	const key = "audit.witness"
	switch {
	case c.Interval < 10*time.Millisecond || c.Interval > time.Hour:
		return fmt.Errorf("%s.interval: %s out of range 10ms..1h", key, c.Interval)
	case c.ResendInterval < c.Interval:
		return fmt.Errorf("%s.resend_interval: %s is shorter than the interval, %s", key, c.ResendInterval, c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("%s.timeout: %s must be positive", key, c.Timeout)
	case c.URL == "" && c.Secret != "":
		return fmt.Errorf("%s.secret: set without a url to sign requests to", key)
	case c.URL == "":
		return nil
	case len(c.Secret) < MinSecretLen:
		return fmt.Errorf("%s.secret: must be at least %d bytes with a url, has %d", key, MinSecretLen, len(c.Secret))
	}
	return checkURL(key, c.URL)
}

// HeadReader reads the audit trail's head; sqldb.AuditService is one.
type HeadReader interface {
	Head(ctx context.Context) (fleet.AuditHead, time.Time, error)
}

// WitnessOptions carries the witness's collaborators.
type WitnessOptions struct {
	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // default: a private registry
	// Backoff is the delay before the first retry of a failed request, doubling for every
	// further one up to one minute or the interval; default one second.
	Backoff time.Duration
}

// Witness exports the audit trail's head outside the store, where whoever can write the
// database cannot take it back: see the package documentation.
type Witness struct {
	cfg     WitnessConfig
	heads   HeadReader
	hub     string
	secret  []byte
	post    poster
	retries backoff.Policy
	log     *slog.Logger

	seq, timestamp prometheus.Gauge
	requests       *prometheus.CounterVec // by result
}

// Results of a witness request, the result label of lockerhub_audit_witness_requests_total.
const (
	witnessSent   = "sent"
	witnessFailed = "failed"
)

// NewWitness returns a witness of the head heads reads, for cfg, which Validate must accept.
func NewWitness(cfg WitnessConfig, heads HeadReader, opts WitnessOptions) (*Witness, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	hub := cfg.Hub
	if hub == "" {
		var err error
		if hub, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("audit.witness.hub: empty, and no host name to use instead: %w", err)
		}
	}
	w := &Witness{cfg: cfg, heads: heads, hub: hub, secret: []byte(cfg.Secret),
		post: poster{client: newClient(), timeout: cfg.Timeout}, retries: retryPolicy(opts.Backoff), log: opts.Logger,
		seq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockerhub_audit_head_seq",
			Help: "Seq of the audit trail's head (its last entry), read every audit.witness.interval. It only grows: a drop means entries were cut.",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockerhub_audit_head_timestamp_seconds",
			Help: "When the audit trail's head entry was appended, in Unix seconds; 0 for an empty trail.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_audit_witness_requests_total",
			Help: "Requests posting the audit head to audit.witness.url, by result: sent (2xx) or failed (retried).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{w.seq, w.timestamp, w.requests} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register audit witness metrics: %w", err)
		}
	}
	// Both series exist from the start, so that "nothing failed" reads as 0.
	w.requests.WithLabelValues(witnessSent)
	w.requests.WithLabelValues(witnessFailed)
	return w, nil
}

// Run reads, logs, exports and posts the head until ctx is done. It never gives up: a head
// that cannot be read is tried again at the next interval, and a request that failed sooner,
// with backoff, sending whatever the head is by then.
func (w *Witness) Run(ctx context.Context) {
	var st witnessState
	for {
		t := time.NewTimer(w.step(ctx, &st))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// witnessState is what Run remembers between steps.
type witnessState struct {
	read           fleet.AuditHead // the head last read
	logged, posted published
	failures       int // requests failed in a row
}

// published is a head, and when it was last logged or posted.
type published struct {
	head fleet.AuditHead
	at   time.Time
}

// due says whether head is to be published at now, after p.
func (p published) due(head fleet.AuditHead, now time.Time, resend time.Duration) bool {
	return p.at.IsZero() || p.head != head || now.Sub(p.at) >= resend
}

// step reads the head and publishes it as due, and returns how long to wait for the next step.
func (w *Witness) step(ctx context.Context, st *witnessState) time.Duration {
	head, at, err := w.heads.Head(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("audit head not read", "error", err)
		}
		return w.cfg.Interval
	}
	w.seq.Set(float64(head.Seq))
	var ts float64 // 0 without an entry, rather than the year 1
	if !at.IsZero() {
		ts = float64(at.UnixMilli()) / 1e3
	}
	w.timestamp.Set(ts)
	// Appends only ever move the head forward. This catches a tail cut between two reads
	// unless appends reached the old seq again meanwhile; verify --head catches that too.
	if st.read.Seq > head.Seq || (st.read.Seq == head.Seq && st.read.Hash != head.Hash) {
		w.log.Error("audit head moved back: entries were cut from the end of the trail",
			"seq", head.Seq, "hash", head.Hash, "previous_seq", st.read.Seq, "previous_hash", st.read.Hash)
	}
	st.read = head
	now := time.Now()
	if st.logged.due(head, now, w.cfg.ResendInterval) {
		w.log.Info("audit head", "seq", head.Seq, "hash", head.Hash)
		st.logged = published{head, now}
	}
	if w.cfg.URL == "" || !st.posted.due(head, now, w.cfg.ResendInterval) {
		return w.cfg.Interval
	}
	retry, err := w.post.attempt(ctx, w.delivery(head, at))
	if err == nil {
		w.requests.WithLabelValues(witnessSent).Inc()
		st.posted, st.failures = published{head, now}, 0
		return w.cfg.Interval
	}
	if ctx.Err() != nil {
		return w.cfg.Interval // stopping: not a failure of the receiver
	}
	w.requests.WithLabelValues(witnessFailed).Inc()
	st.failures++
	wait := w.cfg.Interval
	if retry { // the receiver may answer sooner than the next interval
		wait = min(wait, w.retries.Wait(st.failures, err))
	}
	w.log.Warn("audit head not delivered to the witness; retrying", "seq", head.Seq, "attempt", st.failures, "retry_in", wait, "error", err)
	return wait
}

// witnessPayload is the body of a witness request.
type witnessPayload struct {
	Version int    `json:"version"` // 1; changes that break receivers get a new one
	Hub     string `json:"hub"`
	fleet.AuditHead
	Time   time.Time `json:"time,omitzero"` // when entry Seq was appended
	SentAt string    `json:"sent_at"`       // RFC 3339, the time in the signature
}

func (w *Witness) delivery(head fleet.AuditHead, at time.Time) delivery {
	return delivery{request: func(ctx context.Context) (*http.Request, error) {
		return signedRequest(ctx, w.cfg.URL, w.secret, WitnessEvent, func(sentAt string) any {
			return witnessPayload{Version: 1, Hub: w.hub, AuditHead: head, Time: at, SentAt: sentAt}
		})
	}}
}
