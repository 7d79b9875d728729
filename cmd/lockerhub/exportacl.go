package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// hubPasswordEnv holds the hub's own MQTT password (as for `serve` with an external broker);
// export-acl reads it for the password file when exactly one hub user is given.
const hubPasswordEnv = "LOCKERHUB_MQTT_EXTERNAL_PASSWORD"

// deviceChannels are the channels a device publishes and a hub reads; the test checks them
// against wire.DevicePublishes.
var deviceChannels = []wire.Channel{wire.ChannelTelemetry, wire.ChannelEvents, wire.ChannelStatus, wire.ChannelResult}

// errLegacyHashes makes export-acl exit non-zero when devices were left out for their old
// hashes and --skip-legacy was not given.
var errLegacyHashes = errors.New("devices with a secret hash older than $7$ were left out; rotate their secrets or pass --skip-legacy")

// deviceExportACLCmd writes the Mosquitto password and ACL files that let an external Mosquitto
// do what the embedded broker does: authenticate devices against the registry and give each
// the device ACL of package wire.
//
// The password file is rewritten whole on every run, from two sources only: the registry (the
// devices) and the hub users' credentials given on this run. So that a re-run (from cron, after
// every registry change) can never lose the hubs' own entries, the hub credentials are not read
// back from the previous output but always given anew: from --hub-password-file, a file in
// mosquitto_passwd format that the operator keeps next to it (created with `mosquitto_passwd -c
// hubs.passwd hub-1`), or, for a single hub user, from the environment the hub itself reads
// its password from. Without either the export refuses to run.
func (c *cli) deviceExportACLCmd() *cobra.Command {
	var (
		passwordFile, aclFile, hubPasswordFile string
		hubUsers                               []string
		skipLegacy, watch                      bool
		reload                                 string
	)
	cmd := &cobra.Command{
		Use:   "export-acl --password-file PATH --acl-file PATH --hub-user NAME",
		Short: "Write a Mosquitto password file and ACL file for the registry's devices and the hubs",
		Long: `export-acl writes the password file and the ACL file of a Mosquitto broker that hubs connect
to instead of running the embedded broker (configs/mosquitto/lockerhub.conf, docs/brokers.md).

The password file holds every enabled device with its stored secret hash (already in
Mosquitto's $7$ format) and the hub users. Disabled devices are left out, so that exporting
again and reloading Mosquitto locks them out. Devices whose hash predates $7$ are listed on
stderr with the command that fixes them (rotate-secret); the export then exits non-zero, unless
--skip-legacy. The files are written either way, so that a disabled device is never kept in.

Hub user names must not be possible device IDs (use '_' or upper case: hub_1), so that no
device can ever be registered under a hub's name. The hub users' credentials come from
--hub-password-file (mosquitto_passwd format; one entry per
--hub-user, other entries are ignored) or, with exactly one --hub-user, from
` + hubPasswordEnv + `. They are given on every run and never read back from the previous
password file, so re-running the export cannot wipe them.

The ACL file grants each device (pattern lines, %u = the device ID, which Mosquitto also uses
as its client ID with use_username_as_clientid) exactly what the embedded broker grants it,
and each hub user reading the four device channels of every device (also through
$share/... subscriptions), writing lockers/+/cmd/# and reading lockers/+/cmd/request (the
commands other hubs sent), nothing else.

Both files are replaced atomically with mode 0600, keeping the owner and group of the files
they replace (Mosquitto reads them as its own user). Reload Mosquitto afterwards
(systemctl reload mosquitto, or kill -HUP its pid), or let --reload do it.

--watch keeps running: it exports again, and runs --reload, whenever the registry changes
(checked every registry.watch_interval), so that a disabled unit or a rotated secret is
locked out within a second instead of at the next cron run. Devices with old hashes are then
reported but do not stop it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hubs, err := hubEntries(hubUsers, hubPasswordFile, os.Getenv(hubPasswordEnv))
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cfg, err := c.config()
			if err != nil {
				return err
			}
			return c.withDB(ctx, func(db *sqldb.DB) error {
				s := sqldb.NewDeviceService(db)
				export := func() error {
					if err := c.exportACL(ctx, s, hubs, passwordFile, aclFile, skipLegacy || watch); err != nil {
						return err
					}
					return runReload(ctx, reload, c.stderr)
				}
				if err := export(); err != nil || !watch {
					return err
				}
				fmt.Fprintln(c.stderr, "watching the registry; Ctrl-C stops")
				err := db.WatchRegistry(ctx, cfg.Registry.WatchInterval, func() {
					if err := export(); err != nil {
						fmt.Fprintf(c.stderr, "export-acl: %v; trying again at the next change\n", err)
					}
				})
				if ctx.Err() != nil {
					return nil
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&passwordFile, "password-file", "", "Mosquitto password file to write (required)")
	f.StringVar(&aclFile, "acl-file", "", "Mosquitto ACL file to write (required)")
	f.StringArrayVar(&hubUsers, "hub-user", nil, "MQTT username of a hub (its client ID too); repeat for each hub (required)")
	f.StringVar(&hubPasswordFile, "hub-password-file", "", "mosquitto_passwd file with the hub users' entries; without it, one hub user's password comes from "+hubPasswordEnv)
	f.BoolVar(&skipLegacy, "skip-legacy", false, "exit 0 even though devices with pre-$7$ hashes were left out")
	f.BoolVar(&watch, "watch", false, "keep running: export again (and --reload) on every registry change")
	f.StringVar(&reload, "reload", "", `shell command run after each export, e.g. "systemctl reload mosquitto"`)
	for _, name := range []string{"password-file", "acl-file", "hub-user"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

// runReload runs the reload command, if any, through sh -c.
func runReload(ctx context.Context, command string, stderr io.Writer) error {
	if command == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("--reload %q: %w", command, err)
	}
	return nil
}

// hubEntry is one hub user's line of the password file.
type hubEntry struct{ user, hash string }

// hubEntries returns the password-file entries of the hub users, from the mosquitto_passwd file
// at path if given, else from password (a single hub user only). It returns an error naming the
// user or line at fault for an invalid or duplicate name, a name that could be a device ID, a
// missing password or entry, or an unreadable file.
func hubEntries(users []string, path, password string) ([]hubEntry, error) {
	seen := map[string]bool{}
	for _, u := range users {
		if !validMosquittoUser(u) {
			return nil, fmt.Errorf("invalid hub user %q: 1..65535 bytes, no ':', no white space or control characters", u)
		}
		if wire.ValidDeviceID(u) {
			// A hub user named like a device would share the device's identity should a device
			// of that name ever be registered, and the HTTP auth endpoints would take it for one.
			return nil, fmt.Errorf("hub user %q could be a device ID; give hubs names no device can have, with '_' or upper case (hub_1)", u)
		}
		if seen[u] {
			return nil, fmt.Errorf("hub user %q given twice", u)
		}
		seen[u] = true
	}
	if path == "" {
		switch {
		case len(users) != 1:
			return nil, fmt.Errorf("%d hub users: give their entries with --hub-password-file (%s serves only one)", len(users), hubPasswordEnv)
		case password == "":
			return nil, fmt.Errorf("no password for hub user %q: set %s or give --hub-password-file", users[0], hubPasswordEnv)
		}
		return []hubEntry{{users[0], credential.Hash(password)}}, nil
	}
	hashes, err := readPasswordFile(path)
	if err != nil {
		return nil, err
	}
	entries := make([]hubEntry, len(users))
	for i, u := range users {
		h, ok := hashes[u]
		if !ok {
			return nil, fmt.Errorf("%s has no entry for hub user %q (add one with mosquitto_passwd %s %s)", path, u, path, u)
		}
		entries[i] = hubEntry{u, h}
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

// exportACL reads the registry and writes both files. When it left out devices whose hashes
// predate $7$ and skipLegacy is false, it returns an error wrapping errLegacyHashes, after
// writing the files all the same.
func (c *cli) exportACL(ctx context.Context, s fleet.DeviceService, hubs []hubEntry, passwordFile, aclFile string, skipLegacy bool) error {
	devices, err := s.FindDevices(ctx, fleet.DeviceFilter{})
	if err != nil {
		return err
	}
	var creds []fleet.Credential
	var disabled int
	var legacy []string
	for _, d := range devices {
		cred, err := s.DeviceCredential(ctx, d.ID)
		switch {
		case fleet.ErrorCode(err) == fleet.ENOTFOUND:
			continue // removed since the list was read
		case err != nil:
			return err
		case !cred.Enabled:
			disabled++
		case !credential.IsMosquitto(cred.SecretHash):
			legacy = append(legacy, d.ID)
		default:
			creds = append(creds, cred)
		}
	}

	var pw bytes.Buffer
	pw.WriteString("# Written by lockerhub device export-acl; edits are lost on the next export.\n")
	for _, h := range hubs {
		fmt.Fprintf(&pw, "%s:%s\n", h.user, h.hash)
	}
	for _, cred := range creds {
		fmt.Fprintf(&pw, "%s:%s\n", cred.DeviceID, cred.SecretHash)
	}
	users := make([]string, len(hubs))
	for i, h := range hubs {
		users[i] = h.user
	}
	if err := writeKeepingOwner(passwordFile, pw.Bytes()); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := writeKeepingOwner(aclFile, mosquittoACL(users)); err != nil {
		return fmt.Errorf("write ACL file: %w", err)
	}

	for _, id := range legacy {
		fmt.Fprintf(c.stderr, "left out device %s: its secret hash predates $7$, which Mosquitto cannot check; fix: lockerhub device rotate-secret --id %s (then update the unit and export again)\n", id, id)
	}
	fmt.Fprintf(c.stdout, "wrote %s (%d devices, %d hub users: %s) and %s\n", passwordFile, len(creds), len(hubs), strings.Join(users, ", "), aclFile)
	fmt.Fprintf(c.stdout, "left out %d disabled devices and %d with hashes older than $7$\n", disabled, len(legacy))
	fmt.Fprintln(c.stdout, "reload Mosquitto to apply: systemctl reload mosquitto, or kill -HUP <pid of mosquitto>")
	if len(legacy) > 0 && !skipLegacy {
		return fmt.Errorf("%d %w", len(legacy), errLegacyHashes)
	}
	return nil
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
