package external

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// The password file and ACL file of a Mosquitto broker that hubs connect to instead of running
// the embedded broker (configs/mosquitto/lockerhub.conf, docs/brokers.md): with them Mosquitto
// does what the embedded broker does, authenticating devices against the registry and giving
// each the device ACL of package wire.
//
// The password file is rewritten whole on every export, from two sources only: the registry
// (the devices) and the hub users' entries given to the export. So that a re-run (from cron,
// after every registry change) can never lose the hubs' own entries, they are never read back
// from the previous output.

// deviceChannels are the channels a device publishes and a hub reads.
var deviceChannels = []wire.Channel{wire.ChannelTelemetry, wire.ChannelEvents, wire.ChannelStatus, wire.ChannelResult}

// HubUser is a hub's entry in the password file: its MQTT username, which is its client ID
// too, and its password hash.
type HubUser struct{ Name, Hash string }

// CheckHubUsers returns an error naming the first of users that cannot be a hub user: not a
// possible Mosquitto username, a possible device ID, or given twice.
func CheckHubUsers(users []string) error {
	seen := map[string]bool{}
	for _, u := range users {
		if !validMosquittoUser(u) {
			return fmt.Errorf("invalid hub user %q: 1..65535 bytes, no ':', no white space or control characters", u)
		}
		if wire.ValidDeviceID(u) {
			// A hub user named like a device would share the device's identity should a device
			// of that name ever be registered, and the HTTP auth endpoints would take it for one.
			return fmt.Errorf("hub user %q could be a device ID; give hubs names no device can have, with '_' or upper case (hub_1)", u)
		}
		if seen[u] {
			return fmt.Errorf("hub user %q given twice", u)
		}
		seen[u] = true
	}
	return nil
}

// ReadHubUsers returns the entries of users from the mosquitto_passwd file at path (made with
// `mosquitto_passwd -c hubs.passwd hub_1`); other entries are ignored. It returns an error for
// an unreadable file, a line that is not a hashed entry, or a user without an entry.
func ReadHubUsers(path string, users []string) ([]HubUser, error) {
	hashes, err := readPasswordFile(path)
	if err != nil {
		return nil, err
	}
	entries := make([]HubUser, len(users))
	for i, u := range users {
		h, ok := hashes[u]
		if !ok {
			return nil, fmt.Errorf("%s has no entry for hub user %q (add one with mosquitto_passwd %s %s)", path, u, path, u)
		}
		entries[i] = HubUser{u, h}
	}
	return entries, nil
}

// readPasswordFile reads a mosquitto_passwd file into user → hash. Only hashed entries are
// accepted ($7$, or $6$ from Mosquitto 1.x, which Mosquitto 2 still reads): a plaintext
// password would end up in the broker's file as one.
func readPasswordFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hub password file: %w", err)
	}
	hashes := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || !validMosquittoUser(user) || !(strings.HasPrefix(hash, "$7$") || strings.HasPrefix(hash, "$6$")) ||
			strings.ContainsAny(hash, " \t:") {
			return nil, fmt.Errorf("%s:%d: not a user:hash line of mosquitto_passwd", path, n)
		}
		hashes[user] = hash
	}
	return hashes, sc.Err()
}

// validMosquittoUser reports whether u can be a username in a password file and ACL file:
// Mosquitto splits password lines at the first ':' and ACL lines at white space.
func validMosquittoUser(u string) bool {
	if u == "" || len(u) > 65535 {
		return false
	}
	for _, r := range u {
		if r == ':' || r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// MosquittoExport says what ExportMosquitto wrote and left out.
type MosquittoExport struct {
	Devices  int      // devices in the password file
	Disabled int      // disabled devices left out, so that exporting again locks them out
	Legacy   []string // devices left out because Mosquitto cannot check their pre-$7$ hashes
}

// ExportMosquitto reads the registry's devices from s and replaces passwordFile, with the hubs
// then every enabled device with a $7$ hash, and aclFile. It returns the registry's error, or
// one naming the file it could not write.
func ExportMosquitto(ctx context.Context, s fleet.DeviceService, hubs []HubUser, passwordFile, aclFile string) (MosquittoExport, error) {
	var res MosquittoExport
	devices, err := s.FindDevices(ctx, fleet.DeviceFilter{})
	if err != nil {
		return res, err
	}
	var creds []fleet.Credential
	for _, d := range devices {
		cred, err := s.DeviceCredential(ctx, d.ID)
		switch {
		case fleet.ErrorCode(err) == fleet.ENOTFOUND:
			continue // removed since the list was read
		case err != nil:
			return res, err
		case !cred.Enabled:
			res.Disabled++
		case !credential.IsMosquitto(cred.SecretHash):
			res.Legacy = append(res.Legacy, d.ID)
		default:
			creds = append(creds, cred)
		}
	}
	res.Devices = len(creds)

	var pw bytes.Buffer
	pw.WriteString("# Written by lockerhub device export-acl; edits are lost on the next export.\n")
	for _, h := range hubs {
		fmt.Fprintf(&pw, "%s:%s\n", h.Name, h.Hash)
	}
	for _, cred := range creds {
		fmt.Fprintf(&pw, "%s:%s\n", cred.DeviceID, cred.SecretHash)
	}
	users := make([]string, len(hubs))
	for i, h := range hubs {
		users[i] = h.Name
	}
	if err := writeKeepingOwner(passwordFile, pw.Bytes()); err != nil {
		return res, fmt.Errorf("write password file: %w", err)
	}
	if err := writeKeepingOwner(aclFile, mosquittoACL(users)); err != nil {
		return res, fmt.Errorf("write ACL file: %w", err)
	}
	return res, nil
}

// mosquittoACL returns the ACL file: the hub users' rules and the device patterns. Mosquitto
// applies pattern lines to every user, hubs included, so a hub may also write
// lockers/<its name>/telemetry and so on: a subtree no device can own, since hub names are
// never device IDs, and which the hubs ignore when they read it.
func mosquittoACL(hubUsers []string) []byte {
	var b bytes.Buffer
	b.WriteString(`# Written by lockerhub device export-acl; edits are lost on the next export.
#
# Hub users: read the device-to-hub channels of every device (Mosquitto 2 checks a
# $share/<group>/... subscription against the filter after the group, so these lines cover
# the hubs' shared subscriptions too), write commands, and read the commands other hubs
# sent (broker/external follows them on lockers/+/cmd/request). Nothing else.
`)
	for _, u := range hubUsers {
		fmt.Fprintf(&b, "\nuser %s\n", u)
		for _, ch := range deviceChannels {
			fmt.Fprintf(&b, "topic read %s\n", wire.Topic("+", ch))
		}
		fmt.Fprintf(&b, "topic write %s\n", wire.CommandFilter("+"))
		fmt.Fprintf(&b, "topic read %s\n", wire.Topic("+", wire.ChannelCommand))
	}
	b.WriteString(`
# Devices: %u is the username, which is the device ID and, with use_username_as_clientid, the
# client ID. The same rights as wire.DeviceMayPublish and wire.DeviceMaySubscribe: publish on
# its own four channels, subscribe under its own cmd/.
`)
	for _, ch := range deviceChannels {
		fmt.Fprintf(&b, "pattern write %s\n", wire.Topic("%u", ch))
	}
	fmt.Fprintf(&b, "pattern read %s\n", wire.CommandFilter("%u"))
	return b.Bytes()
}

// writeKeepingOwner replaces path atomically with b (mode 0600) and gives the new file the
// owner and group of the one it replaced: Mosquitto reads its files after dropping to its own
// user, and an export run as root would otherwise leave it a file it cannot open.
func writeKeepingOwner(path string, b []byte) error {
	old, statErr := os.Stat(path)
	if err := atomicfile.Write(filepath.Dir(path), filepath.Base(path), b, true); err != nil {
		return err
	}
	if statErr != nil {
		return nil
	}
	return keepOwner(path, old)
}
