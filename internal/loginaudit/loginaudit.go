// Package loginaudit records failed logins, MQTT connects and API requests alike, in the audit
// trail in batches: one entry per reason, presented device id and client host every Interval,
// with the count and the first and last time.
//
// A flood of bad logins must not turn into a flood of database transactions (each audit append
// is one, and an unauthenticated client can send thousands a second), and it must not hide
// either: every failure is counted in some entry, whatever the client sent. So every field an
// entry takes from the client is cut to a bound that keeps the entry within the audit trail's
// limits (fleet.MaxAuditDeviceLen, fleet.MaxAuditDetailLen), and the keys of one window are
// bounded: beyond maxKeys (a flood of random ids, or of addresses), the failures of a reason
// share one entry marked "many".
package loginaudit

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/logs"
)

// Interval is how often the batches go to the audit trail.
const Interval = 10 * time.Second

// Bounds of a window and of the fields taken from the client. With JSON escaping at most
// six bytes a byte, the detail stays far below fleet.MaxAuditDetailLen.
const (
	maxKeys      = 256
	maxReasonLen = 64
	maxRemoteLen = 64 // a host: an IPv6 address with a zone fits
	maxPathLen   = 256
)

// Failure is one failed login.
type Failure struct {
	Reason string // why it was refused, from a small fixed set: "bad_secret", "invalid_token", ...
	Device string // the device id presented (MQTT); "" when there is none
	Remote string // the client's address, host:port or host; failures are batched by host
	Path   string // the request's path (HTTP); "" when there is none
	Time   time.Time
}

// key groups failures into one entry; many is the shared key of a reason once a window holds
// maxKeys keys.
type key struct {
	reason, device, host string
	many                 bool
}

type batch struct {
	count       int
	first, last time.Time
	host, path  string // the last ones
}

// Recorder collects failed logins and appends them to the audit trail every Interval. A nil
// *Recorder records nothing: the caller has no audit trail.
type Recorder struct {
	audit fleet.Auditor
	actor string // the entries' actor: "mqtt", "api"
	log   *slog.Logger

	mu      sync.Mutex
	pending map[key]*batch
}

// New returns a recorder appending to audit as actor. Run writes the batches.
func New(audit fleet.Auditor, actor string, log *slog.Logger) *Recorder {
	log = logs.OrDiscard(log)
	return &Recorder{audit: audit, actor: actor, log: log, pending: make(map[key]*batch)}
}

// Failed counts f in its batch. It never waits for the audit trail.
func (r *Recorder) Failed(f Failure) {
	if r == nil {
		return
	}
	host, _, err := net.SplitHostPort(f.Remote)
	if err != nil {
		host = f.Remote
	}
	k := key{reason: truncate(f.Reason, maxReasonLen), device: truncate(f.Device, fleet.MaxAuditDeviceLen), host: truncate(host, maxRemoteLen)}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add(k, &batch{count: 1, first: f.Time, last: f.Time, host: k.host, path: truncate(f.Path, maxPathLen)})
}

// add merges b into the pending batch of k, or of the reason's shared key when the window is
// full. r.mu must be held.
func (r *Recorder) add(k key, b *batch) {
	if _, ok := r.pending[k]; !ok && len(r.pending) >= maxKeys {
		k = key{reason: k.reason, many: true}
	}
	p := r.pending[k]
	if p == nil {
		r.pending[k] = b
		return
	}
	p.count += b.count
	if b.first.Before(p.first) {
		p.first = b.first
	}
	if b.last.After(p.last) {
		p.last, p.host, p.path = b.last, b.host, b.path
	}
}

// Run writes the batches every Interval until ctx is done, then once more.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-t.C:
			r.flush()
		}
	}
}

// flush appends one entry per pending batch. A batch the store refuses for a reason that may
// pass (the database is down) goes back into the window to be written with the next one.
func (r *Recorder) flush() {
	r.mu.Lock()
	pending := r.pending
	r.pending = make(map[key]*batch)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), Interval)
	defer cancel()
	for k, b := range pending {
		detail := map[string]any{"reason": k.reason, "count": b.count, "first": b.first.UTC().Format(time.RFC3339Nano),
			"last": b.last.UTC().Format(time.RFC3339Nano), "remote": b.host, "many": k.many}
		if b.path != "" {
			detail["path"] = b.path
		}
		err := r.audit.Append(ctx, &fleet.AuditEntry{Actor: r.actor, Action: fleet.AuditLoginFailed, Device: k.device, Detail: detail})
		if err == nil {
			continue
		}
		r.log.Error("audit trail: failed logins not recorded yet", "actor", r.actor, "reason", k.reason, "count", b.count, "error", err)
		if fleet.ErrorCode(err) != fleet.EINVALID {
			r.mu.Lock()
			r.add(k, b)
			r.mu.Unlock()
		}
	}
}

// truncate returns s as valid UTF-8 (each run of invalid bytes a '?') of at most n bytes, cut
// at a character boundary and ending in "..." when it was longer: the audit trail takes only
// UTF-8, and a client chooses what it sends.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	i := n - len("...")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
