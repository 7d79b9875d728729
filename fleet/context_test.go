package fleet_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
)

// An entry names the actor of its context, with the tool it acted through as "by", and a
// context without an actor gets no entry: the change it was for is refused.
func TestNewAuditEntry(t *testing.T) {
	ctx := context.Background()
	if _, err := fleet.NewAuditEntry(ctx, fleet.AuditDeviceRemove, "bank-1", nil); fleet.ErrorCode(err) != fleet.EINTERNAL {
		t.Fatalf("without an actor: %v, want an internal error", err)
	}
	ana := fleet.Actor{ID: "token:0123456789abcdef", Name: "Ana, night desk"}
	e, err := fleet.NewAuditEntry(fleet.NewContextWithActor(ctx, ana), fleet.AuditDeviceRemove, "bank-1", nil)
	if want := (&fleet.AuditEntry{Actor: ana.ID, ActorName: ana.Name, Action: fleet.AuditDeviceRemove, Device: "bank-1"}); err != nil || !reflect.DeepEqual(e, want) {
		t.Fatalf("NewAuditEntry = %+v, %v; want %+v", e, err, want)
	}
	detail := map[string]any{"kind": "fridge"}
	e, err = fleet.NewAuditEntry(fleet.NewContextWithActor(ctx, fleet.Actor{ID: "cli", Via: "import"}), fleet.AuditDeviceCreate, "bank-1", detail)
	if want := map[string]any{"kind": "fridge", "by": "import"}; err != nil || e.Actor != "cli" || !reflect.DeepEqual(e.Detail, want) {
		t.Fatalf("NewAuditEntry through a tool = %+v, %v; want detail %v", e, err, want)
	}
	if len(detail) != 1 {
		t.Errorf("NewAuditEntry changed the caller's detail: %v", detail)
	}
}
