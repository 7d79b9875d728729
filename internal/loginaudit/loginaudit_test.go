package loginaudit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

func openAudit(t *testing.T) *sqldb.AuditService {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqldb.NewAuditService(db)
}

// entries returns the login.failed entries of the trail and checks that the chain is intact.
func entries(t *testing.T, audit *sqldb.AuditService) []*fleet.AuditEntry {
	t.Helper()
	var out []*fleet.AuditEntry
	if err := audit.Entries(context.Background(), fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
		if e.Action == "login.failed" {
			out = append(out, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if res, err := audit.Verify(context.Background()); err != nil || !res.OK {
		t.Fatalf("audit trail broken: %+v %v", res, err)
	}
	return out
}

func count(t *testing.T, e *fleet.AuditEntry) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(fmt.Sprint(e.Detail["count"]), &n); err != nil {
		t.Fatalf("entry without a count: %+v", e)
	}
	return n
}

// run records fs through a recorder and stops it, which writes the batch.
func run(audit fleet.Auditor, fs ...Failure) {
	r := New(audit, "api", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for _, f := range fs {
		r.Failed(f)
	}
	cancel()
	<-done
}

// Whatever a client sends, its failure is recorded: fields of any length and any bytes, and
// more addresses than a window has keys for.
func TestEveryFailureRecorded(t *testing.T) {
	audit := openAudit(t)
	now := time.Now()
	longDevice := strings.Repeat("€", 200)                           // 600 bytes of UTF-8
	longPath := "/api/v1/" + strings.Repeat("<\xff", 4000) + "/tail" // invalid UTF-8, escaped in JSON
	fs := []Failure{{Reason: "bad_secret", Device: longDevice, Remote: "[fe80::1%eth0]:1883", Path: longPath, Time: now}}
	for i := range maxKeys + 100 { // one failure each from many hosts
		fs = append(fs, Failure{Reason: "invalid_token", Remote: fmt.Sprintf("10.0.%d.%d:4000", i/256, i%256), Path: "/api/v1/devices", Time: now})
	}
	run(audit, fs...)

	got := entries(t, audit)
	total, many := 0, 0
	for _, e := range got {
		total += count(t, e)
		if e.Detail["many"] == true {
			many++
		}
	}
	if total != len(fs) {
		t.Fatalf("entries count %d failures, want %d", total, len(fs))
	}
	if len(got) > maxKeys+1 || many != 1 {
		t.Fatalf("%d entries, %d of them shared; want at most %d and one shared", len(got), many, maxKeys+1)
	}
	var long *fleet.AuditEntry
	for _, e := range got {
		if e.Detail["reason"] == "bad_secret" {
			long = e
		}
	}
	if long == nil {
		t.Fatal("the failure with long fields was not recorded")
	}
	path, _ := long.Detail["path"].(string)
	if !strings.HasPrefix(long.Device, "€€") || !utf8.ValidString(long.Device) || len(long.Device) > fleet.MaxAuditDeviceLen ||
		!strings.HasPrefix(path, "/api/v1/<?<?") || !strings.HasSuffix(path, "...") || len(path) > maxPathLen || long.Detail["remote"] != "fe80::1%eth0" {
		t.Fatalf("long fields recorded as device %q, detail %v", long.Device, long.Detail)
	}
}

// failing refuses its first appends, as a store that is down does.
type failing struct {
	fleet.Auditor
	refuse atomic.Int32
}

func (f *failing) Append(ctx context.Context, e *fleet.AuditEntry) error {
	if f.refuse.Add(-1) >= 0 {
		return errors.New("database is locked")
	}
	return f.Auditor.Append(ctx, e)
}

// A batch the store refuses is written with the next one.
func TestBatchKeptWhileTheStoreFails(t *testing.T) {
	audit := openAudit(t)
	store := &failing{Auditor: audit}
	store.refuse.Store(1)
	r := New(store, "mqtt", nil)
	now := time.Now()
	r.Failed(Failure{Reason: "bad_secret", Device: "bank-1", Remote: "10.0.0.1:5000", Time: now})
	r.Failed(Failure{Reason: "bad_secret", Device: "bank-1", Remote: "10.0.0.1:5001", Time: now.Add(time.Second)})
	r.flush() // refused
	r.Failed(Failure{Reason: "bad_secret", Device: "bank-1", Remote: "10.0.0.1:5002", Time: now.Add(2 * time.Second)})
	r.flush()
	got := entries(t, audit)
	if len(got) != 1 || count(t, got[0]) != 3 || got[0].Device != "bank-1" || got[0].Actor != "mqtt" {
		t.Fatalf("entries after a refused flush: %+v", got)
	}
	if first, _ := time.Parse(time.RFC3339Nano, got[0].Detail["first"].(string)); !first.Equal(now.Truncate(0).UTC()) {
		t.Fatalf("first %v, want %v", got[0].Detail["first"], now.UTC())
	}
}
