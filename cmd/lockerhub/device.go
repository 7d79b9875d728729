package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/deviceimport"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// deviceCmd manages the registry directly in the data directory's database. It is safe to use
// while the hub runs: the hub notices the change and disconnects devices that lost access.
func (c *cli) deviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Manage the device registry (locker banks and refrigerated units)",
	}
	cmd.AddCommand(c.deviceAddCmd(), c.deviceImportCmd(), c.deviceListCmd(), c.deviceRotateCmd(),
		c.deviceEnableCmd("enable", true), c.deviceEnableCmd("disable", false), c.deviceRemoveCmd(), c.deviceShowCmd())
	cmd.AddCommand(c.deviceExportACLCmd())
	return cmd
}

// withDB opens the data directory's database for one command; see checkStore for when it
// must exist already.
func (c *cli) withDB(ctx context.Context, fn func(*sqldb.DB) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	if err := c.checkStore(cfg); err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, cfg.Store.URL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// withDevices opens the registry for one command, with a context in which the CLI is the actor
// that the registry records its changes for.
func (c *cli) withDevices(ctx context.Context, fn func(context.Context, fleet.DeviceService) error) error {
	return c.withDB(ctx, func(db *sqldb.DB) error { return fn(asCLI(ctx, ""), sqldb.NewDeviceService(db)) })
}

// withTokens opens the token store for one command, like withDevices.
func (c *cli) withTokens(ctx context.Context, fn func(context.Context, fleet.TokenService) error) error {
	return c.withDB(ctx, func(db *sqldb.DB) error { return fn(asCLI(ctx, ""), sqldb.NewTokenService(db)) })
}

// asCLI returns ctx with the actor "cli", which the services record for the changes the CLI
// makes to the store itself, through the tool via ("" for a command run by hand).
func asCLI(ctx context.Context, via string) context.Context {
	return fleet.NewContextWithActor(ctx, fleet.Actor{ID: "cli", Via: via})
}

func (c *cli) deviceAddCmd() *cobra.Command {
	var (
		d      fleet.Device
		kind   string
		labels []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "add --id ID --kind KIND --site SITE --doors N",
		Short: "Register a device and print its secret (shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			d.Kind = fleet.Kind(kind)
			if d.Labels, err = fleet.ParseLabels(labels); err != nil {
				return err
			}
			return c.creating().withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				secret, err := s.CreateDevice(ctx, &d)
				if err != nil {
					return err
				}
				return c.printSecret(asJSON, d.ID, secret, fmt.Sprintf("added device %s", deviceSummary(&d)))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.ID, "id", "", "device id: lowercase letters, digits and '-', at most 63 (required)")
	f.StringVar(&kind, "kind", "", "kind of unit: locker-bank or fridge (required)")
	f.StringVar(&d.Site, "site", "", "site (building) the unit stands at (required)")
	f.IntVar(&d.Doors, "doors", 0, "number of doors (compartments) (required)")
	f.StringArrayVar(&labels, "label", nil, "label as key=value; repeat for more")
	f.BoolVar(&asJSON, "json", false, `print {"id": ..., "secret": ...} as JSON`)
	for _, name := range []string{"id", "kind", "site", "doors"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (c *cli) deviceImportCmd() *cobra.Command {
	var (
		file   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "import --file FILE",
		Short: "Register many devices from CSV or JSON lines and print their secrets (shown only once)",
		Long: `import registers every device of FILE ("-" for stdin) in one transaction: all of them or,
if any row is bad or any id is taken, none. Bad rows are listed with their line numbers.

JSON lines: one object per line, {"id": "bank-1", "kind": "locker-bank", "site": "elm-street",
"doors": 24, "labels": {"floor": "lobby"}}. CSV: a header line naming the columns id, kind, site,
doors and optionally labels, in any order; labels are key=value pairs separated by ';'. The
format is told by the first character: '{' starts JSON lines. Blank lines are skipped.

Each device's id and secret are printed, as JSON lines with --json; store them now, they cannot
be shown again. Every device is recorded in the audit trail as device.create.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			ds, err := deviceimport.Read(in)
			if err != nil {
				return fmt.Errorf("nothing imported: %w", err)
			}
			return c.creating().withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				return c.importDevices(asCLI(ctx, "import"), s, ds, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&file, "file", "", `CSV or JSON lines file of devices, "-" for stdin (required)`)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"id": ..., "secret": ...} per device as JSON lines`)
	cmd.MarkFlagRequired("file")
	return cmd
}

// importDevices registers the devices, each recorded in the audit trail in the same
// transaction, and prints the secrets.
func (c *cli) importDevices(ctx context.Context, s fleet.DeviceService, ds []*fleet.Device, asJSON bool) error {
	secrets, err := s.CreateDevices(ctx, ds)
	if err != nil {
		return fmt.Errorf("nothing imported: %w", err)
	}
	w := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(w)
	for i, d := range ds {
		if asJSON {
			err = enc.Encode(map[string]string{"id": d.ID, "secret": secrets[i]})
		} else {
			_, err = fmt.Fprintf(w, "%s\t%s\n", d.ID, secrets[i])
		}
		if err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "imported %d devices; store their secrets in the units' agent configuration now: they cannot be shown again\n", len(ds))
	return nil
}

func (c *cli) deviceRotateCmd() *cobra.Command {
	var id string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-secret --id ID",
		Short: "Give a device a new secret; its connection with the old one is closed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				secret, err := s.RotateSecret(ctx, id)
				if err != nil {
					return err
				}
				return c.printSecret(asJSON, id, secret, "new secret for device "+id)
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "device id (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"id": ..., "secret": ...} as JSON`)
	cmd.MarkFlagRequired("id")
	return cmd
}

func (c *cli) printSecret(asJSON bool, id, secret, headline string) error {
	if asJSON {
		return json.NewEncoder(c.stdout).Encode(map[string]string{"id": id, "secret": secret})
	}
	_, err := fmt.Fprintf(c.stdout, "%s\nsecret: %s\nStore the secret in the unit's agent configuration now: it cannot be shown again.\n", headline, secret)
	return err
}

func (c *cli) deviceEnableCmd(verb string, enabled bool) *cobra.Command {
	var id string
	short := "Allow a disabled device to connect again"
	if !enabled {
		short = "Stop a device from connecting; it is disconnected at once if connected"
	}
	cmd := &cobra.Command{
		Use:   verb + " --id ID",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				if _, err := s.SetEnabled(ctx, id, enabled); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.stdout, "device %s %sd\n", id, verb)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "device id (required)")
	cmd.MarkFlagRequired("id")
	return cmd
}

func (c *cli) deviceRemoveCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "remove --id ID",
		Short: "Remove a device from the registry; it is disconnected at once if connected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				if err := s.DeleteDevice(ctx, id); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.stdout, "device %s removed\n", id)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "device id (required)")
	cmd.MarkFlagRequired("id")
	return cmd
}

func (c *cli) deviceListCmd() *cobra.Command {
	var (
		f      fleet.DeviceFilter
		kind   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Kind = fleet.Kind(kind)
			return c.withDevices(cmd.Context(), func(ctx context.Context, s fleet.DeviceService) error {
				devices, err := s.FindDevices(ctx, f)
				if err != nil {
					return err
				}
				if asJSON {
					if devices == nil {
						devices = []*fleet.Device{} // an empty fleet is [], not null
					}
					return json.NewEncoder(c.stdout).Encode(devices)
				}
				return writeDeviceTable(c.stdout, devices)
			})
		},
	}
	cmd.Flags().StringVar(&f.Site, "site", "", "only devices at this site")
	cmd.Flags().StringVar(&kind, "kind", "", "only devices of this kind")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func writeDeviceTable(w io.Writer, devices []*fleet.Device) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSITE\tDOORS\tENABLED\tLABELS\tCREATED")
	for _, d := range devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%t\t%s\t%s\n", d.ID, d.Kind, d.Site, d.Doors, d.Enabled,
			formatLabels(d.Labels), d.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func deviceSummary(d *fleet.Device) string {
	return fmt.Sprintf("%s (%s, site %s, %d doors)", d.ID, d.Kind, d.Site, d.Doors)
}
