package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// parcelAPI is the API with a real parcel service over a real registry; the units are offline.
type parcelAPI struct {
	t      *testing.T
	addr   string
	secret map[string]string
}

func newParcelAPI(t *testing.T) *parcelAPI {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	for _, d := range []*fleet.Device{
		{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4},
		{ID: "pine-1", Kind: fleet.KindLockerBank, Site: "pine", Doors: 4},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := commands.New(sqldb.NewCommandStore(reg.db), reg.devices, nobodyOnline{}, nobodyOnline{}, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := parcels.New(sqldb.NewParcelStore(reg.db), reg.devices, nobodyOnline{}, cmds, nobodyOnline{}, parcels.Config{},
		parcels.Options{Audit: reg.audit})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	a := &parcelAPI{t: t, addr: reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Commands: cmds, Parcels: svc}), secret: map[string]string{}}
	for name, tok := range map[string]struct {
		role  fleet.Role
		sites []string
	}{
		"carrier": {fleet.RoleCarrier, []string{"oak"}}, "other-carrier": {fleet.RoleCarrier, nil},
		"viewer": {fleet.RoleViewer, nil}, "pine-viewer": {fleet.RoleViewer, []string{"pine"}},
		"technician": {fleet.RoleTechnician, nil}, "operator": {fleet.RoleOperator, nil},
	} {
		a.secret[name] = reg.token(t, name, tok.role, tok.sites...)
	}
	return a
}

// do sends a request as who and returns the status and the body.
func (a *parcelAPI) do(who, method, path, body string) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest(method, "http://"+a.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.secret[who])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *parcelAPI) deliver(who, body string) (lhhttp.DeliveryResponse, *http.Response) {
	a.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+a.addr+"/api/v1/deliveries", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.secret[who])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out lhhttp.DeliveryResponse
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		a.t.Fatalf("deliver %s as %s: %d %s", body, who, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		a.t.Fatal(err)
	}
	return out, resp
}

func ids(t *testing.T, body string) string {
	t.Helper()
	var l lhhttp.ParcelList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var out []string
	for _, p := range l.Parcels {
		out = append(out, p.ID)
	}
	return strings.Join(out, " ")
}

func TestParcelAPI(t *testing.T) {
	a := newParcelAPI(t)

	// A carrier delivers at its site: the code comes back once, never cached.
	mine, resp := a.deliver("carrier", `{"site":"oak","size":"small","recipient":"flat 3"}`)
	if !regexp.MustCompile(`^[0-9]{8}$`).MatchString(mine.Code) || mine.Parcel.DeviceID != "oak-1" || mine.Parcel.Actor == "" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("delivery answered %+v, Cache-Control %q", mine, resp.Header.Get("Cache-Control"))
	}
	theirs, _ := a.deliver("operator", `{"device":"oak-1","door":4}`)
	reserved, _ := a.deliver("carrier", `{"device":"oak-1","reserve":true}`)
	pine, _ := a.deliver("operator", `{"device":"pine-1"}`)

	for _, tc := range []struct {
		who, method, path, body string
		want                    int
	}{
		// Outside the carrier's scope, the unit and the site do not exist.
		{"carrier", "POST", "/api/v1/deliveries", `{"device":"pine-1"}`, 404},
		{"carrier", "POST", "/api/v1/deliveries", `{"site":"pine"}`, 404},
		// A carrier may not read another's parcel, cancel, retrieve, or do what viewers do.
		{"carrier", "GET", "/api/v1/parcels/" + theirs.Parcel.ID, "", 404},
		{"carrier", "POST", "/api/v1/parcels/" + mine.Parcel.ID + "/cancel", `{"reason":"x"}`, 403},
		{"carrier", "POST", "/api/v1/parcels/" + mine.Parcel.ID + "/retrieve", `{"reason":"x"}`, 403},
		{"carrier", "POST", "/api/v1/devices/oak-1/doors/1/unlock", `{"reason":"x"}`, 403},
		{"carrier", "GET", "/api/v1/devices", "", 403},
		{"carrier", "GET", "/api/v1/devices/oak-1", "", 403},
		{"carrier", "GET", "/api/v1/commands", "", 403},
		{"other-carrier", "POST", "/api/v1/parcels/" + reserved.Parcel.ID + "/dropoff", "", 404},
		// Viewers and technicians read, but deliver nothing.
		{"viewer", "POST", "/api/v1/deliveries", `{"site":"oak"}`, 403},
		{"technician", "POST", "/api/v1/parcels/" + mine.Parcel.ID + "/cancel", "", 403},
		{"pine-viewer", "GET", "/api/v1/parcels/" + mine.Parcel.ID, "", 404},
		{"viewer", "GET", "/api/v1/parcels/nope", "", 404},
		// Bad requests.
		{"operator", "POST", "/api/v1/deliveries", `{"site":"oak","code":"12345678"}`, 400},
		{"operator", "POST", "/api/v1/deliveries", `{"site":"oak","size":"huge"}`, 400},
		{"operator", "POST", "/api/v1/parcels/" + mine.Parcel.ID + "/retrieve", `{}`, 400},
		{"viewer", "GET", "/api/v1/parcels?status=lost", "", 400},
		{"viewer", "GET", "/api/v1/parcels?limit=0", "", 400},
		// Taken door, and a reservation dropped off twice.
		{"operator", "POST", "/api/v1/deliveries", `{"device":"oak-1","door":4}`, 409},
		{"carrier", "POST", "/api/v1/parcels/" + reserved.Parcel.ID + "/dropoff", "", 200},
		{"carrier", "POST", "/api/v1/parcels/" + reserved.Parcel.ID + "/dropoff", "", 409},
		// The unit is offline: the retrieve's unlock is refused and the parcel stays.
		{"operator", "POST", "/api/v1/parcels/" + theirs.Parcel.ID + "/retrieve", `{"reason":"damaged"}`, 409},
	} {
		if got, body := a.do(tc.who, tc.method, tc.path, tc.body); got != tc.want {
			t.Errorf("%s %s %s as %s: %d %s, want %d", tc.method, tc.path, tc.body, tc.who, got, body, tc.want)
		}
	}

	for _, tc := range []struct{ who, query, want string }{
		{"carrier", "", reserved.Parcel.ID + " " + mine.Parcel.ID},
		{"other-carrier", "", ""},
		{"viewer", "", pine.Parcel.ID + " " + reserved.Parcel.ID + " " + theirs.Parcel.ID + " " + mine.Parcel.ID},
		{"pine-viewer", "", pine.Parcel.ID},
		{"viewer", "?site=pine", pine.Parcel.ID},
		{"viewer", "?device=oak-1&limit=1", reserved.Parcel.ID},
		{"viewer", "?status=in-locker&status=cancelled&device=oak-1", reserved.Parcel.ID + " " + theirs.Parcel.ID + " " + mine.Parcel.ID},
		{"viewer", "?status=picked-up,retrieved", ""},
		{"viewer", "?occupies=true&site=pine", pine.Parcel.ID},
	} {
		code, body := a.do(tc.who, "GET", "/api/v1/parcels"+tc.query, "")
		if code != 200 || ids(t, body) != tc.want {
			t.Errorf("GET parcels%s as %s: %d %q, want %q", tc.query, tc.who, code, ids(t, body), tc.want)
		}
		for _, c := range []string{mine.Code, theirs.Code, reserved.Code, pine.Code} {
			if strings.Contains(body, c) || strings.Contains(body, "salt") || strings.Contains(body, "hash") {
				t.Fatalf("GET parcels%s shows a code or its hash: %s", tc.query, body)
			}
		}
	}

	code, body := a.do("operator", "POST", "/api/v1/parcels/"+mine.Parcel.ID+"/cancel", `{"reason":"sender recalled it"}`)
	var got lhhttp.ParcelResponse
	if json.Unmarshal([]byte(body), &got); code != 200 || got.Parcel.Status != fleet.ParcelCancelled || got.Parcel.CloseReason != "sender recalled it" {
		t.Fatalf("cancel: %d %s", code, body)
	}
	code, body = a.do("carrier", "GET", "/api/v1/parcels/"+mine.Parcel.ID, "")
	if code != 200 || strings.Contains(body, mine.Code) || !strings.Contains(body, `"status":"cancelled"`) {
		t.Fatalf("the carrier's own parcel: %d %s", code, body)
	}
	code, body = a.do("viewer", "GET", "/api/v1/parcels/"+theirs.Parcel.ID, "")
	if code != 200 || !strings.Contains(body, `"status":"in-locker"`) {
		t.Fatalf("the parcel whose retrieve failed: %d %s", code, body)
	}
}
