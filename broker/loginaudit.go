package broker

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Failed MQTT logins go to the audit trail in batches: one entry per device id and reason every
// loginAuditEvery, with the count and the first and last time. A flood of bad logins must not
// turn into a flood of database transactions (each audit append is one), and it must not hide
// either: every failure is counted in some entry. Ids beyond maxLoginKeys in one window (a
// flood of random ids) share one entry per reason.
const (
	loginAuditEvery = 10 * time.Second
	maxLoginKeys    = 256
	anyDevice       = "*"
)

type loginKey struct{ reason, device string }

type loginFailures struct {
	count       int
	first, last time.Time
	remote      string // the last remote host
}

// loginAudit collects failed logins and appends them to the audit trail periodically.
type loginAudit struct {
	audit fleet.Auditor
	log   *slog.Logger

	mu      sync.Mutex
	pending map[loginKey]*loginFailures
}

func (l *loginAudit) failed(reason, device, remote string, now time.Time) {
	if l == nil {
		return
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if len(device) > fleet.MaxAuditDeviceLen {
		device = device[:fleet.MaxAuditDeviceLen]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := loginKey{reason, device}
	if _, ok := l.pending[k]; !ok && len(l.pending) >= maxLoginKeys {
		k.device = anyDevice
	}
	f := l.pending[k]
	if f == nil {
		f = &loginFailures{first: now}
		l.pending[k] = f
	}
	f.count++
	f.last, f.remote = now, host
}

// run flushes every loginAuditEvery until ctx is done, then once more.
func (l *loginAudit) run(ctx context.Context) {
	t := time.NewTicker(loginAuditEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-t.C:
			l.flush()
		}
	}
}

func (l *loginAudit) flush() {
	l.mu.Lock()
	batch := l.pending
	l.pending = make(map[loginKey]*loginFailures)
	l.mu.Unlock()
	for k, f := range batch {
		device := k.device
		if device == anyDevice {
			device = ""
		}
		err := l.audit.Append(context.Background(), &fleet.AuditEntry{Actor: "mqtt", Action: "login.failed", Device: device,
			Detail: map[string]any{"reason": k.reason, "count": f.count, "first": f.first.UTC().Format(time.RFC3339Nano),
				"last": f.last.UTC().Format(time.RFC3339Nano), "remote": f.remote, "many_devices": k.device == anyDevice}})
		if err != nil {
			l.log.Error("audit trail: failed mqtt logins not recorded", "reason", k.reason, "count", f.count, "error", err)
		}
	}
}
