package sqldb_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// newTrail appends n entries to a new database of engine e and returns the database, the
// trail and the entries as Append filled them in.
func newTrail(t *testing.T, e engine, n int) (store, *sqldb.AuditService, []*fleet.AuditEntry) {
	t.Helper()
	st := newStore(t, e)
	s := sqldb.NewAuditService(st.open(t))
	var entries []*fleet.AuditEntry
	for i := 1; i <= n; i++ {
		e := &fleet.AuditEntry{Actor: "token:0123456789abcdef", Action: "command.unlock",
			Device: fmt.Sprintf("bank-%d", i%3), Detail: map[string]any{"door": i, "reason": "parcel stuck"}}
		if err := s.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	return st, s, entries
}

// readTrail returns the entries matching f.
func readTrail(t *testing.T, s *sqldb.AuditService, f fleet.AuditFilter) []*fleet.AuditEntry {
	t.Helper()
	var out []*fleet.AuditEntry
	if err := s.Entries(context.Background(), f, func(e *fleet.AuditEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func verify(t *testing.T, s *sqldb.AuditService, witnessed ...fleet.AuditHead) fleet.VerifyResult {
	t.Helper()
	res, err := s.Verify(context.Background(), witnessed...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The hash is the one fleet.AuditEntry documents, byte for byte, so that it can be checked
// without lockerhub.
func TestAuditCanonicalEncoding(t *testing.T) {
	t.Parallel()
	e := &fleet.AuditEntry{Seq: 5, Time: time.Date(2026, 3, 1, 13, 0, 0, 120e6, time.FixedZone("CET", 3600)),
		Actor: "token:9f2c", Action: "command.unlock", Device: "bank-1",
		Detail: map[string]any{"reason": "stuck <door>", "door": 3}, PrevHash: "3a7b"}
	const canonical = `{"seq":5,"time":"2026-03-01T12:00:00.12Z","actor":"token:9f2c","action":"command.unlock","device":"bank-1",` +
		`"detail":{"door":3,"reason":"stuck \u003cdoor\u003e"},"prev_hash":"3a7b"}`
	sum := sha256.Sum256([]byte(canonical))
	if got, err := e.ComputeHash(); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("ComputeHash = %s, %v; want the SHA-256 of %s", got, err, canonical)
	}

	// With the token's name, which entries written before names were recorded lack: the
	// encoding above, theirs, is unchanged.
	e.ActorName = "night desk"
	const named = `{"seq":5,"time":"2026-03-01T12:00:00.12Z","actor":"token:9f2c","actor_name":"night desk","action":"command.unlock",` +
		`"device":"bank-1","detail":{"door":3,"reason":"stuck \u003cdoor\u003e"},"prev_hash":"3a7b"}`
	sum = sha256.Sum256([]byte(named))
	if got, err := e.ComputeHash(); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("ComputeHash with a name = %s, %v; want the SHA-256 of %s", got, err, named)
	}
}

// A trail whose older entries have no actor name (written before names were recorded, or by
// the hub itself) and whose newer ones have one verifies as a whole; the hash covers a name
// where there is one, and the absence of one where there is none.
func TestAuditActorNames(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st, s, _ := newTrail(t, e, 2) // no names, as before names were recorded
		for _, a := range []fleet.Actor{{ID: "token:0123456789abcdef", Name: "Ana, night desk"}, fleet.Hub} {
			if err := s.Append(ctx, &fleet.AuditEntry{Actor: a.ID, ActorName: a.Name, Action: "alert.ack", Device: "bank-1"}); err != nil {
				t.Fatal(err)
			}
		}
		if res := verify(t, s); !res.OK || res.Entries != 4 {
			t.Fatalf("Verify of a trail with and without names = %+v", res)
		}
		var names []string
		for _, e := range readTrail(t, s, fleet.AuditFilter{}) {
			names = append(names, e.ActorName)
		}
		if got := strings.Join(names, "|"); got != "||Ana, night desk|" {
			t.Fatalf("actor names read back: %q", got)
		}
		for _, tc := range []struct {
			name, update string
			bad          int64
		}{
			{"a name given to an entry without one", `UPDATE audit SET actor_name = 'Ana, night desk' WHERE seq = 1`, 1},
			{"a name changed", `UPDATE audit SET actor_name = 'Bob' WHERE seq = 3`, 3},
			{"a name removed", `UPDATE audit SET actor_name = '' WHERE seq = 3`, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				raw := st.raw(t)
				// Each case starts from the names as written.
				if _, err := raw.Exec(`UPDATE audit SET actor_name = CASE seq WHEN 3 THEN 'Ana, night desk' ELSE '' END`); err != nil {
					t.Fatal(err)
				}
				if _, err := raw.Exec(tc.update); err != nil {
					t.Fatal(err)
				}
				if res := verify(t, s); res.OK || res.FirstBad != tc.bad {
					t.Fatalf("Verify after %s = %+v, want entry %d named", tc.update, res, tc.bad)
				}
			})
		}
	})
}

func TestAuditAppend(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		_, s, entries := newTrail(t, e, 10)
		for i, e := range entries {
			prev := ""
			if i > 0 {
				prev = entries[i-1].Hash
			}
			if h, _ := e.ComputeHash(); e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != h || len(e.Hash) != 64 {
				t.Fatalf("entry %d = %+v, want seq %d following %q, hash %s", i, e, i+1, prev, h)
			}
			if e.Time.Location() != time.UTC || !e.Time.Equal(e.Time.Truncate(time.Millisecond)) {
				t.Fatalf("entry %d time %v: want UTC at millisecond precision", e.Seq, e.Time)
			}
		}
		read := readTrail(t, s, fleet.AuditFilter{})
		if len(read) != len(entries) {
			t.Fatalf("Entries returned %d entries, want %d", len(read), len(entries))
		}
		for i, e := range read {
			if w := entries[i]; e.Seq != w.Seq || !e.Time.Equal(w.Time) || e.Hash != w.Hash || e.Device != w.Device || fmt.Sprint(e.Detail) != fmt.Sprint(w.Detail) {
				t.Fatalf("read back %+v\nappended   %+v", e, w)
			}
		}
		res := verify(t, s)
		if want := (fleet.VerifyResult{Entries: 10, OK: true, HeadSeq: 10, HeadHash: entries[9].Hash}); res != want {
			t.Fatalf("Verify = %+v, want %+v", res, want)
		}

		t.Run("empty trail", func(t *testing.T) {
			_, s, _ := newTrail(t, e, 0)
			if res := verify(t, s); res != (fleet.VerifyResult{OK: true}) {
				t.Fatalf("Verify = %+v", res)
			}
		})

		t.Run("detail round trip", func(t *testing.T) {
			// Read back, a detail holds maps and json.Numbers instead of the caller's structs and
			// integers; it must still hash the same.
			_, s, _ := newTrail(t, e, 0)
			e := &fleet.AuditEntry{Actor: "hub", Action: "login.failed", Detail: map[string]any{
				"big":     uint64(math.MaxUint64),
				"neg":     -1,
				"ratio":   0.1,
				"html":    "<a href='x'>&</a>",
				"struct":  struct{ Z, A int }{1, 2},
				"list":    []any{3, "two", nil, true},
				"unicode": "Tür\u2028ß",
			}}
			if err := s.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			got := readTrail(t, s, fleet.AuditFilter{})[0]
			if got.Detail["big"] != json.Number("18446744073709551615") {
				t.Errorf("big = %#v, want the exact digits", got.Detail["big"])
			}
			if res := verify(t, s); !res.OK {
				t.Fatalf("Verify = %+v", res)
			}
		})

		t.Run("validation", func(t *testing.T) {
			_, s, _ := newTrail(t, e, 0)
			long := strings.Repeat("x", 200)
			ok := fleet.AuditEntry{Actor: "cli", Action: "device.disable"}
			with := func(f func(*fleet.AuditEntry)) fleet.AuditEntry { e := ok; f(&e); return e }
			for name, e := range map[string]fleet.AuditEntry{
				"no actor":             with(func(e *fleet.AuditEntry) { e.Actor = "" }),
				"long actor":           with(func(e *fleet.AuditEntry) { e.Actor = long }),
				"actor not UTF-8":      with(func(e *fleet.AuditEntry) { e.Actor = "cli\xff" }),
				"no action":            with(func(e *fleet.AuditEntry) { e.Action = "" }),
				"long action":          with(func(e *fleet.AuditEntry) { e.Action = fleet.AuditAction(long[:fleet.MaxAuditActionLen+1]) }),
				"long device":          with(func(e *fleet.AuditEntry) { e.Device = long }),
				"detail too large":     with(func(e *fleet.AuditEntry) { e.Detail = map[string]any{"blob": strings.Repeat("x", 4096)} }),
				"detail not encodable": with(func(e *fleet.AuditEntry) { e.Detail = map[string]any{"c": make(chan int)} }),
				"detail NaN":           with(func(e *fleet.AuditEntry) { e.Detail = map[string]any{"f": math.NaN()} }),
			} {
				if err := s.Append(ctx, &e); fleet.ErrorCode(err) != fleet.EINVALID || e.Seq != 0 {
					t.Errorf("%s: Append = %v, seq %d; want invalid and nothing filled in", name, err, e.Seq)
				}
			}
			largest := with(func(e *fleet.AuditEntry) {
				e.Detail = map[string]any{"blob": strings.Repeat("x", fleet.MaxAuditDetailLen-len(`{"blob":""}`))}
			})
			if err := s.Append(ctx, &largest); err != nil {
				t.Fatalf("detail of exactly %d bytes: %v", fleet.MaxAuditDetailLen, err)
			}
			if res := verify(t, s); res.Entries != 1 || !res.OK {
				t.Fatalf("Verify = %+v, want only the valid entry", res)
			}
		})
	})
}

// Each case tampers with a fresh trail of 10 entries directly in the database, as someone with
// write access to it would, and expects Verify to name the entry.
func TestAuditTampering(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		execSQL := func(stmts ...string) func(*testing.T, *sql.DB, *sqldb.AuditService) {
			return func(t *testing.T, db *sql.DB, _ *sqldb.AuditService) {
				for _, q := range stmts {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
		}
		// rehash changes entry seq and stores the hash its new contents should have.
		rehash := func(seq int64) func(*testing.T, *sql.DB, *sqldb.AuditService) {
			return func(t *testing.T, db *sql.DB, s *sqldb.AuditService) {
				e := readTrail(t, s, fleet.AuditFilter{})[seq-1]
				e.Actor = "cli"
				h, err := e.ComputeHash()
				if err != nil {
					t.Fatal(err)
				}
				execSQL(fmt.Sprintf(`UPDATE audit SET actor = 'cli', hash = '%s' WHERE seq = %d`, h, seq))(t, db, s)
			}
		}
		tests := []struct {
			name     string
			tamper   func(*testing.T, *sql.DB, *sqldb.AuditService)
			firstBad int64
		}{
			{"time edited", execSQL(`UPDATE audit SET time = time + 1 WHERE seq = 5`), 5},
			{"actor edited", execSQL(`UPDATE audit SET actor = 'cli' WHERE seq = 5`), 5},
			{"action edited", execSQL(`UPDATE audit SET action = 'command.lock' WHERE seq = 5`), 5},
			{"device edited", execSQL(`UPDATE audit SET device = 'bank-9' WHERE seq = 5`), 5},
			{"detail edited", execSQL(`UPDATE audit SET detail = '{"door":6,"reason":"parcel stuck"}' WHERE seq = 5`), 5},
			{"detail no longer JSON", execSQL(`UPDATE audit SET detail = '{"door":' WHERE seq = 5`), 5},
			{"prev_hash edited", execSQL(`UPDATE audit SET prev_hash = hash WHERE seq = 5`), 5},
			{"hash edited", execSQL(`UPDATE audit SET hash = prev_hash WHERE seq = 5`), 5},
			// The break shows between 5 and 6; whether 5 or 6's prev_hash changed cannot be told.
			{"edited with its hash recomputed", rehash(5), 6},
			{"last entry edited with its hash recomputed", rehash(10), 10},
			{"entry deleted", execSQL(`DELETE FROM audit WHERE seq = 5`), 5},
			{"entry deleted and the rest renumbered", execSQL(
				`DELETE FROM audit WHERE seq = 5`,
				`UPDATE audit SET seq = 1 - seq WHERE seq > 5`, // through negative seqs: seq is unique at every step
				`UPDATE audit SET seq = -seq WHERE seq < 0`,
				`UPDATE audit_head SET seq = 9`), 5},
			{"entries 4 and 5 swapped", execSQL(
				`UPDATE audit SET seq = -4 WHERE seq = 4`,
				`UPDATE audit SET seq = 4 WHERE seq = 5`,
				`UPDATE audit SET seq = 5 WHERE seq = -4`), 4},
			{"last entry deleted", execSQL(`DELETE FROM audit WHERE seq = 10`), 10},
			{"last three entries deleted", execSQL(`DELETE FROM audit WHERE seq > 7`), 8},
			{"last entry deleted, then one appended", func(t *testing.T, db *sql.DB, s *sqldb.AuditService) {
				// The new entry follows the head, not the last row, so the gap stays.
				execSQL(`DELETE FROM audit WHERE seq = 10`)(t, db, s)
				if err := s.Append(ctx, &fleet.AuditEntry{Actor: "hub", Action: "login.failed"}); err != nil {
					t.Fatal(err)
				}
			}, 10},
			{"entry added behind the head", func(t *testing.T, db *sql.DB, s *sqldb.AuditService) {
				// A well-formed entry 11, but written without moving the head.
				e := readTrail(t, s, fleet.AuditFilter{})[9]
				e.Seq, e.PrevHash = 11, e.Hash
				h, err := e.ComputeHash()
				if err != nil {
					t.Fatal(err)
				}
				execSQL(fmt.Sprintf(`INSERT INTO audit (seq, time, actor, action, device, detail, prev_hash, hash) SELECT 11, time, actor, action, device, detail, hash, '%s' FROM audit WHERE seq = 10`, h))(t, db, s)
			}, 11},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, s, _ := newTrail(t, e, 10)
				attacker := st.raw(t)
				tt.tamper(t, attacker, s)
				res := verify(t, s)
				if res.OK || res.FirstBad != tt.firstBad || res.Problem == "" {
					t.Fatalf("Verify = %+v, want entry %d named", res, tt.firstBad)
				}
				t.Logf("entry %d: %s", res.FirstBad, res.Problem)
			})
		}
	})
}

func TestAuditEntriesFilter(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		_, s, _ := newTrail(t, e, 0)
		var entries []*fleet.AuditEntry
		for i, device := range []string{"bank-1", "bank-2", "", "bank-1", "bank-2", ""} {
			if i == 3 {
				time.Sleep(5 * time.Millisecond) // entries 4 to 6 are strictly later than 1 to 3
			}
			e := &fleet.AuditEntry{Actor: "cli", Action: "device.disable", Device: device}
			if err := s.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		since := entries[3].Time
		tests := []struct {
			name string
			f    fleet.AuditFilter
			want []int64
		}{
			{"all", fleet.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6}},
			{"device", fleet.AuditFilter{Device: "bank-1"}, []int64{1, 4}},
			{"unknown device", fleet.AuditFilter{Device: "bank-9"}, nil},
			{"since", fleet.AuditFilter{Since: since}, []int64{4, 5, 6}},
			{"since and device", fleet.AuditFilter{Since: since, Device: "bank-2"}, []int64{5}},
			{"since after the last", fleet.AuditFilter{Since: entries[5].Time.Add(time.Millisecond)}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got []int64
				for _, e := range readTrail(t, s, tt.f) {
					got = append(got, e.Seq)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("seqs %v, want %v", got, tt.want)
				}
			})
		}
		t.Run("fn error stops", func(t *testing.T) {
			stop := errors.New("stop")
			calls := 0
			err := s.Entries(ctx, fleet.AuditFilter{}, func(*fleet.AuditEntry) error { calls++; return stop })
			if err != stop || calls != 1 {
				t.Fatalf("Entries = %v after %d calls, want stop after 1", err, calls)
			}
		})
	})
}

// The hub and the CLI append to the same file at once, or two hubs to the same PostgreSQL
// database: the database, not the process, keeps the chain linear.
func TestAuditConcurrentAppends(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		handles := []*sqldb.AuditService{sqldb.NewAuditService(st.open(t)), sqldb.NewAuditService(st.open(t))}
		const goroutines, each = 4, 10
		errs := make(chan error, len(handles)*goroutines)
		var wg sync.WaitGroup
		for h, s := range handles {
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						e := &fleet.AuditEntry{Actor: fmt.Sprintf("handle-%d", h), Action: "test.append", Detail: map[string]any{"goroutine": g, "i": i}}
						if err := s.Append(ctx, e); err != nil {
							errs <- err
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		const total = 2 * goroutines * each
		if res := verify(t, handles[0]); !res.OK || res.Entries != total || res.HeadSeq != total {
			t.Fatalf("Verify = %+v, want %d entries intact", res, total)
		}
		for i, e := range readTrail(t, handles[1], fleet.AuditFilter{}) {
			if e.Seq != int64(i+1) {
				t.Fatalf("entry %d has seq %d: seqs are not contiguous", i+1, e.Seq)
			}
		}
	})
}

// An attacker with write access to the database cuts the tail off a trail of 10 entries and
// rewinds the head, or rewrites the chain: the chain left verifies, and only a head witnessed
// before, outside the store, shows what happened.
func TestAuditWitnessedHead(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		// cut deletes the entries after seq and points the head at entry seq.
		cut := func(t *testing.T, db *sql.DB, seq int) {
			t.Helper()
			for _, q := range []string{
				fmt.Sprintf(`DELETE FROM audit WHERE seq > %d`, seq),
				fmt.Sprintf(`UPDATE audit_head SET seq = %d, hash = (SELECT hash FROM audit WHERE seq = %[1]d) WHERE id = 1`, seq),
			} {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		tests := []struct {
			name      string
			tamper    func(*testing.T, *sql.DB, *sqldb.AuditService)
			witnessed int64 // seq of the witnessed entry
			firstBad  int64 // 0: the witness still holds
			problem   string
		}{
			{"last three entries cut and the head rewound", func(t *testing.T, db *sql.DB, _ *sqldb.AuditService) { cut(t, db, 7) },
				10, 8, "it is missing: entry 10 was witnessed as 10:"},
			{"cut, then appended to again", func(t *testing.T, db *sql.DB, s *sqldb.AuditService) {
				cut(t, db, 7)
				for range 3 {
					if err := s.Append(ctx, &fleet.AuditEntry{Actor: "hub", Action: "login.failed"}); err != nil {
						t.Fatal(err)
					}
				}
			}, 10, 10, "it is not the entry witnessed as 10:"},
			{"chain rewritten from entry 3 on", func(t *testing.T, db *sql.DB, s *sqldb.AuditService) {
				prev := ""
				for _, e := range readTrail(t, s, fleet.AuditFilter{}) {
					if e.Seq == 3 {
						e.Actor = "cli"
					}
					e.PrevHash = prev
					var err error
					if e.Hash, err = e.ComputeHash(); err != nil {
						t.Fatal(err)
					}
					prev = e.Hash
					if _, err := db.Exec(fmt.Sprintf(`UPDATE audit SET actor = '%s', prev_hash = '%s', hash = '%s' WHERE seq = %d`, e.Actor, e.PrevHash, e.Hash, e.Seq)); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.Exec(fmt.Sprintf(`UPDATE audit_head SET hash = '%s' WHERE id = 1`, prev)); err != nil {
					t.Fatal(err)
				}
			}, 5, 5, "it is not the entry witnessed as 5:"},
			// The limit: what was appended after the last witness can be cut unnoticed.
			{"entries after the witness cut", func(t *testing.T, db *sql.DB, _ *sqldb.AuditService) { cut(t, db, 7) }, 5, 0, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, s, entries := newTrail(t, e, 10)
				witness := fleet.AuditHead{Seq: tt.witnessed, Hash: entries[tt.witnessed-1].Hash}
				if res := verify(t, s, witness); !res.OK {
					t.Fatalf("Verify(%s) before tampering = %+v", witness, res)
				}
				tt.tamper(t, st.raw(t), s)
				if res := verify(t, s); !res.OK {
					t.Fatalf("Verify() = %+v; want the chain left to verify, as tampering this way leaves it whole", res)
				}
				res := verify(t, s, witness)
				if tt.firstBad == 0 {
					if !res.OK {
						t.Fatalf("Verify(%s) = %+v, want OK", witness, res)
					}
					return
				}
				if res.OK || res.FirstBad != tt.firstBad || !strings.Contains(res.Problem, tt.problem+witness.Hash) {
					t.Fatalf("Verify(%s) = %+v\nwant entry %d named, with %q", witness, res, tt.firstBad, tt.problem)
				}
				t.Logf("entry %d: %s", res.FirstBad, res.Problem)
			})
		}

		t.Run("head", func(t *testing.T) {
			_, s, entries := newTrail(t, e, 3)
			head, at, err := s.Head(ctx)
			if want := (fleet.AuditHead{Seq: 3, Hash: entries[2].Hash}); err != nil || head != want || !at.Equal(entries[2].Time) {
				t.Fatalf("Head = %v %v %v, want %v %v", head, at, err, want, entries[2].Time)
			}
			_, empty, _ := newTrail(t, e, 0)
			if head, at, err := empty.Head(ctx); err != nil || head != (fleet.AuditHead{}) || !at.IsZero() {
				t.Fatalf("Head of an empty trail = %v %v %v, want zeros", head, at, err)
			}
		})

		t.Run("several witnesses", func(t *testing.T) {
			_, s, entries := newTrail(t, e, 4)
			ws := []fleet.AuditHead{{Seq: 4, Hash: entries[3].Hash}, {Seq: 2, Hash: entries[1].Hash}, {Seq: 2, Hash: entries[1].Hash}}
			if res := verify(t, s, ws...); !res.OK {
				t.Fatalf("Verify(%v) = %+v", ws, res)
			}
			ws = append(ws, fleet.AuditHead{Seq: 3, Hash: entries[1].Hash}, fleet.AuditHead{Seq: 9, Hash: entries[1].Hash})
			if res := verify(t, s, ws...); res.OK || res.FirstBad != 3 {
				t.Fatalf("Verify(%v) = %+v, want the lowest wrong witness, entry 3, named", ws, res)
			}
		})

		t.Run("invalid witness", func(t *testing.T) {
			_, s, entries := newTrail(t, e, 1)
			for _, w := range []fleet.AuditHead{{Seq: 0, Hash: entries[0].Hash}, {Seq: 1, Hash: "abc"}, {Seq: 1, Hash: strings.ToUpper(entries[0].Hash)}} {
				if _, err := s.Verify(ctx, w); fleet.ErrorCode(err) != fleet.EINVALID {
					t.Errorf("Verify(%s) = %v, want invalid", w, err)
				}
			}
		})
	})
}
