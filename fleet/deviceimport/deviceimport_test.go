package deviceimport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/deviceimport"
)

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       string   // the devices read, as "id kind site doors labels"
		wantErr    []string // substrings of the error
	}{
		{"CSV", "id,kind,site,doors,labels\n" +
			"bank-1,locker-bank,elm,24,floor=lobby;zone=a\n" +
			"\n" +
			" fridge-1 ,fridge,elm,6,\n",
			"bank-1 locker-bank elm 24 map[floor:lobby zone:a]\nfridge-1 fridge elm 6 map[]\n", nil},
		{"CSV columns in any order, without labels", "Site,doors,ID,kind\nelm,4,bank-1,locker-bank\n",
			"bank-1 locker-bank elm 4 map[]\n", nil},
		{"JSON lines", "\n" + `{"id":"f-1","kind":"fridge","site":"oak","doors":4,"labels":{"class":"freezer"}}` + "\n",
			"f-1 fridge oak 4 map[class:freezer]\n", nil},
		{"bad rows by line", "id,kind,site,doors,labels\n" +
			"ok-1,fridge,oak,4,\n" +
			"ok-1,fridge,oak,4,\n" +
			"\n" +
			"oven-1,oven,oak,4,\n" +
			"bank-9,locker-bank,oak,many,\n" +
			"bank-8,locker-bank,oak,12,floor\n" +
			"bank-7,locker-bank,oak\n",
			"", []string{`line 3: device id "ok-1" is also on line 2`, `line 5: unknown kind "oven"`,
				`line 6: doors "many" is not a number`, `line 7: invalid label "floor"`, "line 8: 3 fields, want 5"}},
		{"unknown JSON field", "\n" + `{"id":"f-1","kind":"fridge","site":"oak","doors":4}` + "\n" +
			`{"id":"f-2","kind":"fridge","site":"oak","door":4}` + "\n",
			"", []string{"line 3:", `unknown field "door"`}},
		{"unknown CSV column", "id,kind,site,doors,floor\n", "", []string{`line 1: unknown column "floor"`}},
		{"missing CSV column", "id,kind,site\n", "", []string{`line 1: no column "doors"`}},
		{"header only", "id,kind,site,doors\n", "", []string{"no devices"}},
		{"empty", "\n", "", []string{"no devices"}},
		{"too many bad rows", "id,kind,site,doors\n" + strings.Repeat("x,oven,oak,4\n", deviceimport.MaxErrors+5),
			"", []string{"and 5 more bad rows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := deviceimport.Read(strings.NewReader(tc.file))
			var got strings.Builder
			for _, d := range ds {
				fmt.Fprintf(&got, "%s %s %s %d %v\n", d.ID, d.Kind, d.Site, d.Doors, d.Labels)
			}
			if got.String() != tc.want {
				t.Errorf("devices:\n%swant:\n%s", got.String(), tc.want)
			}
			if (err != nil) != (len(tc.wantErr) > 0) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q, want %q in it", err, want)
				}
			}
		})
	}
}
