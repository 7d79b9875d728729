package fleet_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// A delivery's code life is written as people write durations, both ways, and anything else is
// refused with a message saying what is wanted.
func TestDeliveryExpiresInIsDurationText(t *testing.T) {
	var d fleet.Delivery
	if err := json.Unmarshal([]byte(`{"device":"bank-1","expires_in":"36h"}`), &d); err != nil || time.Duration(d.ExpiresIn) != 36*time.Hour {
		t.Fatalf("36h read as %v, %v", time.Duration(d.ExpiresIn), err)
	}
	b, _ := json.Marshal(fleet.Delivery{DeviceID: "bank-1", ExpiresIn: fleet.Duration(90 * time.Minute)})
	if string(b) != `{"device":"bank-1","expires_in":"1h30m0s"}` {
		t.Fatalf("marshalled as %s", b)
	}
	for _, bad := range []string{`3600`, `"soon"`, `"-"`} {
		err := json.Unmarshal([]byte(`{"expires_in":`+bad+`}`), &d)
		if fleet.ErrorCode(err) != fleet.EINVALID {
			t.Errorf("expires_in %s: %v, want EINVALID", bad, err)
		}
	}
}
