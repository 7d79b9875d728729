package fleet

import "testing"

func TestRoleAllows(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		want       bool
	}{
		{RoleViewer, RoleViewer, true},
		{RoleViewer, RoleTechnician, false},
		{RoleTechnician, RoleViewer, true},
		{RoleTechnician, RoleOperator, false},
		{RoleOperator, RoleOperator, true},
		{RoleOperator, RoleAdmin, false},
		{RoleAdmin, RoleOperator, true},
		{"root", RoleViewer, false},
		// A carrier stands outside the ladder: no check of it lets one through, and it lets
		// no role through either.
		{RoleCarrier, RoleViewer, false},
		{RoleCarrier, RoleOperator, false},
		{RoleCarrier, RoleCarrier, false},
		{RoleAdmin, RoleCarrier, false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%s.Allows(%s) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}

func TestRoleMayDeliver(t *testing.T) {
	for r, want := range map[Role]bool{RoleViewer: false, RoleTechnician: false, RoleOperator: true, RoleAdmin: true, RoleCarrier: true, "root": false} {
		if got := r.MayDeliver(); got != want {
			t.Errorf("%s.MayDeliver() = %v, want %v", r, got, want)
		}
	}
	if err := RoleCarrier.Validate(); err != nil {
		t.Errorf("a carrier token cannot be made: %v", err)
	}
}

func TestParseSites(t *testing.T) {
	got := ParseSites(" oak, elm,,oak ")
	if len(got) != 2 || got[0] != "oak" || got[1] != "elm" {
		t.Fatalf("ParseSites = %q", got)
	}
	if ParseSites("") != nil {
		t.Fatal("empty list is not nil (all sites)")
	}
}
