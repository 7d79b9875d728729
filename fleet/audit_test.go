package fleet_test

import (
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
)

func TestParseAuditHead(t *testing.T) {
	hash := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		in   string
		want fleet.AuditHead // zero: invalid
	}{
		{"42:" + hash, fleet.AuditHead{Seq: 42, Hash: hash}},
		{" 42:" + strings.ToUpper(hash) + "\n", fleet.AuditHead{Seq: 42, Hash: hash}}, // pasted
		{"0:" + hash, fleet.AuditHead{}},
		{"-1:" + hash, fleet.AuditHead{}},
		{"42 " + hash, fleet.AuditHead{}},
		{"42:" + hash[:63], fleet.AuditHead{}},
		{"42:" + hash + "0", fleet.AuditHead{}},
		{"42:" + hash[:63] + "g", fleet.AuditHead{}},
		{"x:" + hash, fleet.AuditHead{}},
		{"42:" + hash + ":1", fleet.AuditHead{}},
		{"", fleet.AuditHead{}},
	} {
		got, err := fleet.ParseAuditHead(tc.in)
		if tc.want == (fleet.AuditHead{}) {
			if fleet.ErrorCode(err) != fleet.EINVALID || got != tc.want {
				t.Errorf("ParseAuditHead(%q) = %v, %v; want invalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != "42:"+hash {
			t.Errorf("ParseAuditHead(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
