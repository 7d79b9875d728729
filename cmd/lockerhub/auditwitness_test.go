package main_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/notify"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// addDevices appends an audit entry per device it adds.
func addDevices(t *testing.T, environ []string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, errOut, code := run(t, environ, "device", "add", "--id", id, "--kind", "locker-bank", "--site", "oak", "--doors", "2"); code != 0 {
			t.Fatalf("device add %s: exit %d: %s", id, code, errOut)
		}
	}
}

// An operator keeps `audit head`; someone with write access to the database then cuts the
// last entries off the trail and rewinds the head. Plain verify cannot tell; verify with the
// kept head can.
func TestAuditWitnessCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	environ := env(dir)
	emptyStore(t, dir)
	if out, errOut, code := run(t, environ, "audit", "head"); code != 3 || out != "" || !strings.Contains(errOut, "the audit trail is empty") {
		t.Fatalf("audit head of an empty trail: exit %d, %q %q; want exit 3 saying it is empty", code, out, errOut)
	}
	addDevices(t, environ, "bank-1", "bank-2", "bank-3")

	out, errOut, code := run(t, environ, "audit", "head")
	head := strings.TrimSuffix(out, "\n")
	seq, hash, _ := strings.Cut(head, ":")
	if code != 0 || seq != "3" || len(hash) != 64 {
		t.Fatalf("audit head: exit %d, %q %q; want 3:<hash>", code, out, errOut)
	}
	out, _, code = run(t, environ, "audit", "head", "--json")
	var j struct {
		Seq  int64
		Hash string
		Time time.Time
	}
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || j.Seq != 3 || j.Hash != hash || time.Since(j.Time) > time.Minute {
		t.Fatalf("audit head --json: exit %d, %q", code, out)
	}
	if out, errOut, code := run(t, environ, "audit", "verify", "--head", head); code != 0 || !strings.Contains(out, "witnessed head "+head+" found") {
		t.Fatalf("audit verify --head %s before tampering: exit %d, %q %q", head, code, out, errOut)
	}

	attacker, err := sql.Open("sqlite", filepath.Join(dir, sqldb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for _, q := range []string{`DELETE FROM audit WHERE seq > 1`, `UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM audit WHERE seq = 1)`} {
		if _, err := attacker.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	if out, errOut, code := run(t, environ, "audit", "verify"); code != 0 || !strings.HasPrefix(out, "audit trail intact: 1 entries") {
		t.Fatalf("audit verify after the cut: exit %d, %q %q; want it to pass, as nothing in the store tells", code, out, errOut)
	}
	out, errOut, code = run(t, environ, "audit", "verify", "--head", head)
	if want := "audit trail broken at entry 2: it is missing: entry 3 was witnessed as " + head; code == 0 || out != "" || !strings.Contains(errOut, want) {
		t.Fatalf("audit verify --head after the cut: exit %d, %q %q; want a failure saying %q", code, out, errOut, want)
	}

	for _, bad := range []string{"3", "3:" + hash[:10], "three:" + hash, "0:" + hash, ""} {
		if out, errOut, code := run(t, environ, "audit", "verify", "--head", bad); code != 2 || out != "" || !strings.Contains(errOut, "--head: invalid audit head") {
			t.Errorf("audit verify --head %q: exit %d, %q %q; want a usage error", bad, code, out, errOut)
		}
	}
}

// The hub exports the head: in /metrics, in its log, and to the witness URL, signed.
func TestAuditWitnessHub(t *testing.T) {
	t.Parallel()
	const secret = "witness-secret-0123456789"
	type post struct {
		Hub  string
		Seq  int64
		Hash string
	}
	posts := make(chan post, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get("X-Lockerhub-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("witness request %s: %v", body, err)
		}
		var p post
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("witness request %s: %v", body, err)
		}
		select {
		case posts <- p:
		default: // a handler that blocked would keep srv.Close from returning
			t.Errorf("more than %d witness requests", cap(posts))
		}
	}))
	defer srv.Close()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_AUDIT_WITNESS_INTERVAL=50ms",
		"LOCKERHUB_AUDIT_WITNESS_URL="+srv.URL, "LOCKERHUB_AUDIT_WITNESS_SECRET="+secret, "LOCKERHUB_AUDIT_WITNESS_HUB=hub-e2e")
	hub := startHub(t, environ)

	addDevices(t, environ, "bank-1")
	out, _, _ := run(t, environ, "audit", "head")
	want := post{Hub: "hub-e2e", Seq: 1, Hash: strings.TrimPrefix(strings.TrimSpace(out), "1:")}
	deadline := time.After(20 * time.Second)
	for got := (post{}); got != want; {
		select {
		case got = <-posts:
		case <-deadline:
			t.Fatalf("the witness URL did not get %+v", want)
		}
	}
	for logged := false; !logged; {
		select {
		case rec := <-hub.logs:
			logged = rec["msg"] == "audit head" && rec["seq"] == 1.0 && rec["hash"] == want.Hash
		case <-deadline:
			t.Fatalf("the hub did not log the head %d:%s", want.Seq, want.Hash)
		}
	}
	if _, m := hub.get(t, "/metrics"); !strings.Contains(m, "\nlockerhub_audit_head_seq 1\n") || !strings.Contains(m, `lockerhub_audit_witness_requests_total{result="sent"}`) {
		t.Fatal("/metrics lacks lockerhub_audit_head_seq 1 or the witness requests")
	}
}
