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
	} {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%s.Allows(%s) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
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
