package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
)

// alertsCmd is `lockerhub alerts`: the fleet's alerts through the hub's API.
func (c *cli) alertsCmd() *cobra.Command {
	var (
		api                                 hubAPI
		state, rule, severity, site, device string
		limit                               int
		asJSON                              bool
	)
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List alerts, newest first, and acknowledge or resolve them (through the hub's API)",
		Long: `alerts lists the alerts the health rules raised, newest first, in the token's scope. By
default only open ones (firing or acknowledged); --state resolved or --state all for the history.
The token comes from --token or LOCKERHUB_TOKEN, the hub from --hub.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"rule": rule, "severity": severity, "site": site, "device": device} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if state != "all" {
				q.Set("state", state)
			}
			q.Set("limit", strconv.Itoa(limit))
			hub, err := api.client()
			if err != nil {
				return err
			}
			alerts, err := hub.Alerts(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(c.stdout).Encode(alerts)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSEVERITY\tSTATE\tBY\tRULE\tDEVICE\tDOOR\tFIRED\tSUMMARY")
			for _, a := range alerts {
				door := "-"
				if a.Door != 0 {
					door = strconv.Itoa(a.Door)
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, a.State, movedBy(&a), a.Rule, a.DeviceID, door,
					a.FiredAt.Local().Format(time.DateTime), a.Summary)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	api.flags(f, fleet.RoleViewer)
	f.StringVar(&state, "state", "open", "open, firing, acknowledged, resolved or all")
	f.StringVar(&rule, "rule", "", "only this rule's alerts, e.g. forced-entry")
	f.StringVar(&severity, "severity", "", "only this severity: critical, major, minor or warning")
	f.StringVar(&site, "site", "", "only this site")
	f.StringVar(&device, "device", "", "only this device")
	f.IntVar(&limit, "limit", 100, "at most this many, 1..1000")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(c.alertActionCmd("ack", "Acknowledge a firing alert: someone is on it (technician token)"),
		c.alertActionCmd("resolve", "Resolve an open alert, e.g. after a repair (technician token)"))
	return cmd
}

// movedBy is who moved an alert to its state: "-" while it fires.
func movedBy(a *fleet.Alert) string {
	switch a.State {
	case fleet.AlertAcknowledged:
		return actorText(a.AckedBy, a.AckedByName)
	case fleet.AlertResolved:
		return actorText(a.ResolvedBy, a.ResolvedByName)
	}
	return "-"
}

// alertActionCmd is `lockerhub alerts ack|resolve ID --note TEXT`.
func (c *cli) alertActionCmd(action, short string) *cobra.Command {
	var (
		api    hubAPI
		note   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return fmt.Errorf("alert id %q: want a positive number", args[0])
			}
			hub, err := api.client()
			if err != nil {
				return err
			}
			a, raw, err := hub.AlertAction(cmd.Context(), id, action, note)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := c.stdout.Write(append(raw, '\n'))
				return err
			}
			fmt.Fprintf(c.stdout, "alert %d (%s on %s) is %s\n", a.ID, a.Rule, a.DeviceID, a.State)
			return nil
		},
	}
	api.flags(cmd.Flags(), fleet.RoleTechnician)
	cmd.Flags().StringVar(&note, "note", "", "what you are doing about it, for the record")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the alert as JSON")
	return cmd
}
