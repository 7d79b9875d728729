package external_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/broker/external"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/topicmatch"
)

// The export writes the hubs, then the enabled devices, and an ACL file that grants exactly
// the device ACL of package wire and the hubs' rights. cmd/lockerhub's export-acl tests cover
// the devices with pre-$7$ hashes and a real Mosquitto reading the files.
func TestExportMosquitto(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, "", filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	for _, id := range []string{"bank-1", "bank-2", "bank-3"} {
		if _, err := devices.CreateDevice(ctx, &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "elm", Doors: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := devices.SetEnabled(ctx, "bank-2", false); err != nil {
		t.Fatal(err)
	}
	pw, acl := filepath.Join(dir, "lockerhub.passwd"), filepath.Join(dir, "lockerhub.acl")
	hubs := []external.HubUser{{Name: "hub_1", Hash: "$7$101$salt$hash"}}
	res, err := external.ExportMosquitto(ctx, devices, hubs, pw, acl)
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 2 || res.Disabled != 1 || len(res.Legacy) != 0 {
		t.Errorf("export %+v, want 2 devices, 1 disabled, no legacy", res)
	}
	b, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, line := range strings.Split(string(b), "\n") {
		if u, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			users = append(users, u)
		}
	}
	if got := strings.Join(users, ","); got != "hub_1,bank-1,bank-3" {
		t.Errorf("password file users %s, want hub_1,bank-1,bank-3", got)
	}
	for _, p := range []string{pw, acl} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", p, fi.Mode(), err)
		}
	}
	checkACL(t, acl, "hub_1")
}

func TestHubUsers(t *testing.T) {
	dir := t.TempDir()
	hubs := filepath.Join(dir, "hubs.passwd")
	os.WriteFile(hubs, []byte("# hubs\nhub_1:$7$101$a$b\nstray:$6$c$d\n"), 0o600)
	plain := filepath.Join(dir, "plain.passwd")
	os.WriteFile(plain, []byte("hub_1:plaintext\n"), 0o600)
	for _, tc := range []struct {
		name    string
		users   []string
		path    string
		wantErr string
	}{
		{"from the file", []string{"hub_1"}, hubs, ""},
		{"could be a device", []string{"hub-1"}, hubs, `hub user "hub-1" could be a device ID`},
		{"with a colon", []string{"hub:1"}, hubs, "invalid hub user"},
		{"twice", []string{"hub_1", "hub_1"}, hubs, "given twice"},
		{"no entry", []string{"hub_1", "hub_2"}, hubs, `no entry for hub user "hub_2"`},
		{"plaintext entry", []string{"hub_1"}, plain, "plain.passwd:1"},
		{"no file", []string{"hub_1"}, filepath.Join(dir, "missing"), "read hub password file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := external.CheckHubUsers(tc.users)
			var got []external.HubUser
			if err == nil {
				got, err = external.ReadHubUsers(tc.path, tc.users)
			}
			switch {
			case tc.wantErr == "" && (err != nil || len(got) != 1 || got[0] != external.HubUser{Name: "hub_1", Hash: "$7$101$a$b"}):
				t.Errorf("%+v, %v; want hub_1's entry", got, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

// checkACL reads an exported ACL file the way Mosquitto applies it to a topic name (user and
// topic lines for the user, pattern lines with %u for everyone) and compares it with the
// device ACL of package wire and the hub's rights: the file must grant exactly those.
func checkACL(t *testing.T, path, hub string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct{ user, access, topic string } // user "" for patterns
	var rules []rule
	current := ""
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || strings.HasPrefix(fields[0], "#"):
		case fields[0] == "user" && len(fields) == 2:
			current = fields[1]
		case (fields[0] == "topic" || fields[0] == "pattern") && len(fields) == 3:
			u := current
			if fields[0] == "pattern" {
				u = ""
			}
			rules = append(rules, rule{u, fields[1], fields[2]})
		default:
			t.Fatalf("unexpected ACL line %q", line)
		}
	}
	may := func(user, access, topic string) bool {
		for _, r := range rules {
			filter := r.topic
			if r.user == "" {
				filter = strings.ReplaceAll(filter, "%u", user)
			} else if r.user != user {
				continue
			}
			if (r.access == access || r.access == "readwrite") && topicmatch.Matches(filter, topic) {
				return true
			}
		}
		return false
	}
	var topics []string
	for _, dev := range []string{"bank-1", "bank-2", "hub_1"} {
		for _, ch := range []string{"telemetry", "events", "status", "result", "cmd/request", "cmd/other", "cmd", "other", "telemetry/x"} {
			topics = append(topics, "lockers/"+dev+"/"+ch)
		}
	}
	topics = append(topics, "$SYS/broker/uptime", "lockers", "other/bank-1/telemetry")
	for _, topic := range topics {
		if got, want := may("bank-1", "write", topic), wire.DeviceMayPublish("bank-1", topic); got != want {
			t.Errorf("bank-1 write %s: ACL file %v, wire %v", topic, got, want)
		}
		// A filter ending in /# also matches its parent (MQTT 3.1.1, 4.7.1.2), so the ACL gives
		// lockers/{id}/cmd itself, where no one but a hub can publish.
		if got, want := may("bank-1", "read", topic), wire.DeviceMaySubscribe("bank-1", topic) || topic == "lockers/bank-1/cmd"; got != want {
			t.Errorf("bank-1 read %s: ACL file %v, wire %v", topic, got, want)
		}
		dev, ch, ok := wire.ParseTopic(topic)
		hubReads := ok && (wire.DevicePublishes(ch) || ch == wire.ChannelCommand) && dev != hub
		hubWrites := strings.HasPrefix(topic, "lockers/") && strings.Count(topic, "/") >= 2 && strings.Split(topic, "/")[2] == "cmd"
		// What the device patterns give a hub under its own name, which no device can have.
		if ch, ok := strings.CutPrefix(topic, "lockers/"+hub+"/"); ok && wire.DevicePublishes(wire.Channel(ch)) {
			hubWrites = true
		}
		if got := may(hub, "read", topic) && !strings.HasPrefix(topic, "lockers/"+hub+"/"); got != hubReads {
			t.Errorf("hub read %s: %v, want %v", topic, got, hubReads)
		}
		if got := may(hub, "write", topic); got != hubWrites {
			t.Errorf("hub write %s: %v, want %v", topic, got, hubWrites)
		}
	}
}
