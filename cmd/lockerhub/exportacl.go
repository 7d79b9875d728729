package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/broker/external"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// hubPasswordEnv holds the hub's own MQTT password (as for `serve` with an external broker);
// export-acl reads it for the password file when exactly one hub user is given.
const hubPasswordEnv = "LOCKERHUB_MQTT_EXTERNAL_PASSWORD"

// errLegacyHashes makes export-acl exit non-zero when devices were left out for their old
// hashes and --skip-legacy was not given.
var errLegacyHashes = errors.New("devices with a secret hash older than $7$ were left out; rotate their secrets or pass --skip-legacy")

// deviceExportACLCmd writes the Mosquitto password and ACL files (broker/external) that let an
// external Mosquitto do what the embedded broker does. The hub users' credentials are given
// anew on every run, never read back from the previous output: from --hub-password-file, a file
// in mosquitto_passwd format that the operator keeps next to it, or, for a single hub user,
// from the environment the hub itself reads its password from. Without either the export
// refuses to run.
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

// hubEntries returns the password-file entries of the hub users, from the mosquitto_passwd file
// at path if given, else from password (a single hub user only). It returns an error naming the
// user or line at fault for an invalid or duplicate name, a name that could be a device ID, a
// missing password or entry, or an unreadable file.
func hubEntries(users []string, path, password string) ([]external.HubUser, error) {
	if err := external.CheckHubUsers(users); err != nil {
		return nil, err
	}
	if path != "" {
		return external.ReadHubUsers(path, users)
	}
	switch {
	case len(users) != 1:
		return nil, fmt.Errorf("%d hub users: give their entries with --hub-password-file (%s serves only one)", len(users), hubPasswordEnv)
	case password == "":
		return nil, fmt.Errorf("no password for hub user %q: set %s or give --hub-password-file", users[0], hubPasswordEnv)
	}
	return []external.HubUser{{Name: users[0], Hash: credential.Hash(password)}}, nil
}

// exportACL writes both files and says what it wrote. When it left out devices whose hashes
// predate $7$ and skipLegacy is false, it returns an error wrapping errLegacyHashes, after
// writing the files all the same.
func (c *cli) exportACL(ctx context.Context, s fleet.DeviceService, hubs []external.HubUser, passwordFile, aclFile string, skipLegacy bool) error {
	res, err := external.ExportMosquitto(ctx, s, hubs, passwordFile, aclFile)
	if err != nil {
		return err
	}
	for _, id := range res.Legacy {
		fmt.Fprintf(c.stderr, "left out device %s: its secret hash predates $7$, which Mosquitto cannot check; fix: lockerhub device rotate-secret --id %s (then update the unit and export again)\n", id, id)
	}
	users := make([]string, len(hubs))
	for i, h := range hubs {
		users[i] = h.Name
	}
	fmt.Fprintf(c.stdout, "wrote %s (%d devices, %d hub users: %s) and %s\n", passwordFile, res.Devices, len(hubs), strings.Join(users, ", "), aclFile)
	fmt.Fprintf(c.stdout, "left out %d disabled devices and %d with hashes older than $7$\n", res.Disabled, len(res.Legacy))
	fmt.Fprintln(c.stdout, "reload Mosquitto to apply: systemctl reload mosquitto, or kill -HUP <pid of mosquitto>")
	if len(res.Legacy) > 0 && !skipLegacy {
		return fmt.Errorf("%d %w", len(res.Legacy), errLegacyHashes)
	}
	return nil
}
