package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
)

// deliverCmd is `lockerhub deliver`: a parcel into a locker, through the hub's API.
func (c *cli) deliverCmd() *cobra.Command {
	var (
		api    hubAPI
		d      fleet.Delivery
		size   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "deliver --unit U | --site S",
		Short: "Deliver a parcel into a free compartment and print its pickup code, once (carrier or operator token)",
		Long: `deliver records a parcel in a compartment of the unit named by --unit, or of a unit the hub
picks at --site, and prints the parcel and its pickup code. The code is shown this once: the hub
keeps only its hash. Without --door the hub picks the smallest free door that fits --size, of the
kind the parcel needs (--perishable: a fridge, --frozen: a freezer). --reserve holds the
compartment until "lockerhub parcels dropoff ID"; the code works from then on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d.Size = fleet.Size(size)
			hub, err := api.client()
			if err != nil {
				return err
			}
			res, raw, err := hub.Deliver(cmd.Context(), d)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := c.stdout.Write(raw)
				return err
			}
			printParcel(c.stdout, res.Parcel)
			_, err = fmt.Fprintf(c.stdout, "code\t%s  (shown once: give it to the recipient now)\n", res.Code)
			return err
		},
	}
	f := cmd.Flags()
	api.flags(f, fleet.RoleCarrier)
	f.StringVar(&d.DeviceID, "unit", "", "the unit to deliver into")
	f.StringVar(&d.Site, "site", "", "the site to deliver at; the hub picks the unit")
	f.IntVar(&d.Door, "door", 0, "this door of --unit (default: the hub picks)")
	f.StringVar(&size, "size", "", "small, medium or large (default: any door fits)")
	f.BoolVar(&d.Perishable, "perishable", false, "needs a fridge compartment")
	f.BoolVar(&d.Frozen, "frozen", false, "needs a freezer compartment")
	f.StringVar(&d.Recipient, "recipient", "", "who it is for: a flat or resident reference")
	f.StringVar(&d.Carrier, "carrier", "", "the delivery company")
	f.BoolVar(&d.Reserve, "reserve", false, "reserve the compartment; the code works after the drop-off")
	f.BoolVar(&asJSON, "json", false, "print the hub's answer (the parcel and the code) as JSON")
	cmd.MarkFlagsMutuallyExclusive("unit", "site")
	cmd.MarkFlagsOneRequired("unit", "site")
	return cmd
}

// parcelsCmd is `lockerhub parcels`: parcels through the hub's API.
func (c *cli) parcelsCmd() *cobra.Command {
	var (
		api        hubAPI
		site, unit string
		status     []string
		occupies   bool
		limit      int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "parcels",
		Short: "List parcels, newest first, and show, drop off, cancel or retrieve one (through the hub's API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"status": status, "limit": {strconv.Itoa(limit)}}
			for k, v := range map[string]string{"site": site, "device": unit} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if occupies {
				q.Set("occupies", "true")
			}
			hub, err := api.client()
			if err != nil {
				return err
			}
			ps, raw, err := hub.Parcels(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := c.stdout.Write(raw)
				return err
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATUS\tUNIT\tDOOR\tCOMPARTMENT\tRECIPIENT\tCREATED\tEXPIRES")
			for _, p := range ps {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.ID, p.Status, p.DeviceID, p.Door, p.Compartment, dash(p.Recipient),
					p.CreatedAt.Local().Format(time.DateTime), p.ExpiresAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	api.flags(f, fleet.RoleViewer)
	f.StringVar(&site, "site", "", "only this site")
	f.StringVar(&unit, "unit", "", "only this unit")
	f.StringSliceVar(&status, "status", nil, "only these statuses: awaiting-dropoff, in-locker, picked-up, retrieved, expired, cancelled")
	f.BoolVar(&occupies, "occupies", false, "only parcels inside a compartment")
	f.IntVar(&limit, "limit", 100, "at most this many, 1..1000")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(c.parcelActionCmd("show", "Show a parcel's chain of custody", fleet.RoleViewer),
		c.parcelActionCmd("dropoff", "Put a reserved parcel in: its code works from now (carrier or operator token)", fleet.RoleCarrier),
		c.parcelActionCmd("cancel", "Call a delivery off: its code stops working (operator token)", fleet.RoleOperator),
		c.parcelActionCmd("retrieve", "Unlock a parcel's door to take it out, with a reason (operator token)", fleet.RoleOperator))
	return cmd
}

// parcelActionCmd is `lockerhub parcels show|dropoff|cancel|retrieve ID`.
func (c *cli) parcelActionCmd(action, short string, role fleet.Role) *cobra.Command {
	var (
		api    hubAPI
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hub, err := api.client()
			if err != nil {
				return err
			}
			var res *fleethttp.ParcelResponse
			var raw []byte
			if action == "show" {
				res, raw, err = hub.Parcel(cmd.Context(), args[0])
			} else {
				res, raw, err = hub.ParcelAction(cmd.Context(), args[0], action, reason)
			}
			if err != nil {
				return err
			}
			if asJSON {
				_, err := c.stdout.Write(raw)
				return err
			}
			printParcel(c.stdout, res.Parcel)
			if res.Command != nil {
				fmt.Fprintf(c.stdout, "unlock\t%s: %s\n", res.Command.ID, res.Command.Outcome)
			}
			return nil
		},
	}
	api.flags(cmd.Flags(), role)
	if action == "cancel" || action == "retrieve" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the chain of custody")
	}
	if action == "retrieve" {
		cmd.MarkFlagRequired("reason")
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the hub's answer as JSON")
	return cmd
}

// printParcel prints a parcel's record, one field a line.
func printParcel(out io.Writer, p *fleet.Parcel) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "parcel\t%s\n", p.ID)
	fmt.Fprintf(w, "status\t%s\n", p.Status)
	fmt.Fprintf(w, "unit\t%s (site %s), door %d, %s\n", p.DeviceID, p.Site, p.Door, p.Compartment)
	for _, f := range []struct{ name, value string }{{"size", string(p.Size)}, {"recipient", p.Recipient}, {"carrier", p.Carrier}} {
		if f.value != "" {
			fmt.Fprintf(w, "%s\t%s\n", f.name, f.value)
		}
	}
	fmt.Fprintf(w, "delivered\t%s by %s\n", p.CreatedAt.Local().Format(time.DateTime), actorText(p.Actor, p.ActorName))
	if p.DroppedAt != nil {
		fmt.Fprintf(w, "dropped off\t%s\n", p.DroppedAt.Local().Format(time.DateTime))
	}
	fmt.Fprintf(w, "code expires\t%s\n", p.ExpiresAt.Local().Format(time.DateTime))
	if p.PickedUpAt != nil {
		offline := ""
		if p.Offline {
			offline = " (while the unit was offline)"
		}
		fmt.Fprintf(w, "picked up\t%s%s\n", p.PickedUpAt.Local().Format(time.DateTime), offline)
	}
	if p.ClosedAt != nil {
		fmt.Fprintf(w, "closed\t%s by %s %s\n", p.ClosedAt.Local().Format(time.DateTime), p.ClosedBy, p.CloseReason)
	}
	w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
