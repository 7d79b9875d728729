package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

func TestAlertLifecycle(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		s := sqldb.NewAlertStore(st.open(t))
		t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		temp := 9.5
		tech := fleet.Actor{ID: "token:abc", Name: "Ana, night desk"}

		a := &fleet.Alert{Rule: "cold-holding", Severity: fleet.SeverityMajor, Scope: fleet.ScopeCompartment, DeviceID: "fridge-1",
			Site: "oak", Door: 2, Summary: "compartment 2 at 9.5 °C", Value: &temp, FiredAt: t0}
		if err := s.CreateAlert(ctx, a); err != nil || a.ID == 0 || a.State != fleet.AlertFiring {
			t.Fatalf("CreateAlert = %v, %+v", err, a)
		}
		dup := *a
		if err := s.CreateAlert(ctx, &dup); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("second open alert for the same key: %v, want conflict", err)
		}
		other := &fleet.Alert{Rule: "door-ajar", Severity: fleet.SeverityMinor, Scope: fleet.ScopeDoor, DeviceID: "bank-1",
			Site: "elm", Door: 1, Summary: "door 1 open for 10m", FiredAt: t0.Add(time.Minute)}
		if err := s.CreateAlert(ctx, other); err != nil {
			t.Fatal(err)
		}

		acked, err := s.AckAlert(ctx, a.ID, tech, "on my way", t0.Add(2*time.Minute))
		if err != nil || acked.State != fleet.AlertAcknowledged || acked.AckedBy != "token:abc" || acked.AckedByName != tech.Name || acked.AckNote != "on my way" ||
			!acked.AckedAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("AckAlert = %+v, %v", acked, err)
		}
		if _, err := s.AckAlert(ctx, a.ID, tech, "", t0); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("ack twice: %v, want conflict", err)
		}
		if _, err := s.AckAlert(ctx, 999, tech, "", t0); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("ack unknown: %v, want not found", err)
		}

		// A filter per field, as the API passes them; newest first.
		for _, tc := range []struct {
			name string
			f    fleet.AlertFilter
			want []int64
		}{
			{"all", fleet.AlertFilter{}, []int64{other.ID, a.ID}},
			{"open", fleet.AlertFilter{Open: true}, []int64{other.ID, a.ID}},
			{"state", fleet.AlertFilter{State: fleet.AlertAcknowledged}, []int64{a.ID}},
			{"rule", fleet.AlertFilter{Rule: "cold-holding"}, []int64{a.ID}},
			{"unknown rule", fleet.AlertFilter{Rule: "cold"}, nil},
			{"severity", fleet.AlertFilter{Severity: fleet.SeverityMinor}, []int64{other.ID}},
			{"site", fleet.AlertFilter{Site: "oak"}, []int64{a.ID}},
			{"device", fleet.AlertFilter{DeviceID: "bank-1"}, []int64{other.ID}},
			{"token scope", fleet.AlertFilter{Sites: []string{"elm", "pine"}}, []int64{other.ID}},
			{"empty scope", fleet.AlertFilter{Sites: []string{}}, nil},
			{"limit", fleet.AlertFilter{Limit: 1}, []int64{other.ID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.FindAlerts(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for _, g := range got {
					ids = append(ids, g.ID)
				}
				if len(ids) != len(tc.want) || (len(ids) > 0 && ids[0] != tc.want[0]) {
					t.Fatalf("ids = %v, want %v", ids, tc.want)
				}
			})
		}
		if _, err := s.FindAlerts(ctx, fleet.AlertFilter{State: "burning"}); fleet.ErrorCode(err) != fleet.EINVALID {
			t.Fatalf("unknown state: %v, want invalid", err)
		}

		// Resolved, the condition may fire again as a new alert; the old one stays in the history.
		res, err := sqldb.NewAlertStore(st.open(t)).ResolveAlert(ctx, a.ID, fleet.Hub, "back below 4.5 °C", t0.Add(time.Hour))
		if err != nil || res.State != fleet.AlertResolved || res.ResolvedBy != fleet.ActorHub || res.ResolvedByName != "" ||
			res.AckedBy != "token:abc" || res.AckedByName != tech.Name ||
			*res.Value != temp || !res.FiredAt.Equal(t0) {
			t.Fatalf("ResolveAlert = %+v, %v", res, err)
		}
		if _, err := s.ResolveAlert(ctx, a.ID, tech, "", t0); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("resolve twice: %v, want conflict", err)
		}
		three := 3.0
		if re, err := s.RestateAlert(ctx, other.ID, "door 1 open for 20m", &three); err != nil || re.Summary != "door 1 open for 20m" ||
			re.Value == nil || *re.Value != 3 || re.State != fleet.AlertFiring {
			t.Fatalf("RestateAlert = %+v, %v", re, err)
		}
		if _, err := s.RestateAlert(ctx, a.ID, "x", nil); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("restate a resolved alert: %v, want conflict", err)
		}
		again := *a
		again.ID, again.FiredAt = 0, t0.Add(2*time.Hour)
		if err := s.CreateAlert(ctx, &again); err != nil || again.ID == a.ID {
			t.Fatalf("fire again after resolve: %v", err)
		}
		if got, _ := s.FindAlerts(ctx, fleet.AlertFilter{DeviceID: "fridge-1"}); len(got) != 2 {
			t.Fatalf("history of fridge-1: %d alerts, want 2", len(got))
		}
	})
}
