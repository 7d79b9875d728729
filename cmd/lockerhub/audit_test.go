package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// runAudit runs `lockerhub audit args...` through the command tree and returns its stdout.
func runAudit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs(append([]string{"audit"}, args...))
	err := root.ExecuteContext(context.Background())
	return stdout.String(), err
}

func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("LOCKERHUB_DATA_DIR", dir)
	db, err := sqldb.Open(ctx, "", dir) // the store, empty, as the hub's first start leaves it
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if out, err := runAudit(t, "verify"); err != nil || out != "audit trail intact: 0 entries, head 0 -\n" {
		t.Fatalf("verify on an empty trail = %q, %v", out, err)
	}
	var last fleet.AuditEntry
	for _, e := range []fleet.AuditEntry{
		{Actor: "token:0123456789abcdef", Action: "command.unlock", Device: "bank-1",
			Detail: map[string]any{"door": 3, "nonce": uint64(math.MaxUint64)}},
		{Actor: "hub", Action: "login.failed", Device: "bank-2", Detail: map[string]any{"remote": "10.0.0.7:51234"}},
		{Actor: "cli", Action: "device.disable", Device: "bank-1"},
		// Entries with the token's name follow those without, as in a trail begun before
		// names were recorded.
		{Actor: "token:0123456789abcdef", ActorName: "Ana, night desk", Action: "alert.ack", Device: "bank-2"},
	} {
		if err := sqldb.NewAuditService(db).Append(ctx, &e); err != nil {
			t.Fatal(err)
		}
		last = e
	}

	if out, err := runAudit(t, "verify"); err != nil || out != fmt.Sprintf("audit trail intact: 4 entries, head 4 %s\n", last.Hash) {
		t.Fatalf("verify = %q, %v", out, err)
	}

	for _, tt := range []struct {
		args []string
		want []int64
	}{
		{nil, []int64{1, 2, 3, 4}},
		{[]string{"--device", "bank-1"}, []int64{1, 3}},
		{[]string{"--since", "2000-01-01T00:00:00Z"}, []int64{1, 2, 3, 4}},
		{[]string{"--since", "2999-01-01T00:00:00Z", "--device", "bank-1"}, nil},
	} {
		args := append([]string{"export"}, tt.args...)
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := runAudit(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
				var e fleet.AuditEntry
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				// An exported line is enough to check the entry's hash, without the database.
				if h, err := e.ComputeHash(); err != nil || h != e.Hash {
					t.Fatalf("line %q: recomputed hash %s, %v", sc.Text(), h, err)
				}
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tt.want) {
				t.Fatalf("exported seqs %v, want %v", seqs, tt.want)
			}
		})
	}
	if _, err := runAudit(t, "export", "--since", "yesterday"); fleet.ErrorCode(err) != fleet.EINVALID {
		t.Fatalf("export --since yesterday = %v, want invalid", err)
	}

	attacker, err := sql.Open("sqlite", filepath.Join(dir, sqldb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	if _, err := attacker.Exec(`UPDATE audit SET actor = 'cli' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if out, err := runAudit(t, "verify"); err == nil || !strings.HasPrefix(err.Error(), "audit trail broken at entry 2: ") || out != "" {
		t.Fatalf("verify on a tampered trail = %q, %v; want it broken at entry 2", out, err)
	}
}
