package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// fleetCmd is `lockerhub fleet`: the fleet at a glance, through the hub's API.
func (c *cli) fleetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "The fleet at a glance (through the hub's API)"}
	cmd.AddCommand(c.fleetStatusCmd())
	return cmd
}

// fleetStatusCmd is `lockerhub fleet status`: GET /api/v1/health as a table.
func (c *cli) fleetStatusCmd() *cobra.Command {
	var (
		api    hubAPI
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Units per site by health, with their open alerts (viewer token)",
		Long: `status prints, for every site in the token's scope, how many units it has and how many of
them are ok, warning (an open minor or warning alert), critical (an open critical or major alert)
or offline, and the open alerts; then the total. Below, the sites' compartments of each kind
(dry, fridge, freezer): how many hold a parcel, are reserved for a drop-off, and are free.
--json prints the hub's health answer with the occupancy (GET /api/v1/occupancy) added as
"occupancy". The token comes from --token or LOCKERHUB_TOKEN, the hub from --hub.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hub, err := api.client()
			if err != nil {
				return err
			}
			h, raw, err := hub.Health(cmd.Context())
			if err != nil {
				return err
			}
			occ, err := hub.Occupancy(cmd.Context(), url.Values{"units": {"false"}})
			if fleet.ErrorCode(err) == fleet.EUNAVAILABLE {
				occ, err = nil, nil // a hub without parcel custody
			}
			if err != nil {
				return err
			}
			if asJSON {
				var out map[string]json.RawMessage
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("hub: unexpected answer: %w", err)
				}
				if occ != nil {
					out["occupancy"], _ = json.Marshal(occ)
				}
				return json.NewEncoder(c.stdout).Encode(out)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SITE\tUNITS\tOK\tWARNING\tCRITICAL\tOFFLINE\tALERTS")
			h.Total.Site = "TOTAL"
			for _, s := range append(h.Sites, h.Total) {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Site, s.Units, s.OK, s.Warning, s.Critical, s.Offline, s.Open)
			}
			if err := w.Flush(); err != nil || occ == nil || len(occ.Fleet) == 0 {
				return err
			}
			fmt.Fprintln(c.stdout)
			return writeOccupancy(c.stdout, occ)
		},
	}
	api.flags(cmd.Flags(), fleet.RoleViewer)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the hub's JSON answer")
	return cmd
}

// writeOccupancy writes the compartments of each site by kind, then the fleet's.
func writeOccupancy(w io.Writer, occ *fleethttp.OccupancyAnswer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tCOMPARTMENTS\tTOTAL\tOCCUPIED\tRESERVED\tFREE")
	row := func(site string, k fleet.KindOccupancy) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", site, k.Kind, k.Total, k.Occupied, k.Reserved, k.Free)
	}
	for _, s := range occ.Sites {
		for _, k := range s.Kinds {
			row(s.Site, k)
		}
	}
	for _, k := range occ.Fleet {
		row("TOTAL", k)
	}
	return tw.Flush()
}

// deviceShowCmd is `lockerhub device show`. Unlike the other device commands it goes through
// the API: presence and live state exist only in the running hub.
func (c *cli) deviceShowCmd() *cobra.Command {
	var (
		api    hubAPI
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show ID [--json]",
		Short: "A unit's presence, health, doors, latest readings and open alerts (through the hub's API, viewer token)",
		Long: `show prints what the running hub knows about a unit right now: whether it is connected and
since when, its health, each door (open or closed, locked, the compartment's temperature), its
latest readings (ambient and enclosure temperatures, heater or compressor) and its open alerts.
--json prints {"device": <GET /api/v1/devices/ID>, "alerts": [<its open alerts>]}. The token
comes from --token or LOCKERHUB_TOKEN, the hub from --hub.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			hub, err := api.client()
			if err != nil {
				return err
			}
			d, raw, err := hub.Device(cmd.Context(), id)
			if err != nil {
				return err
			}
			alerts, err := hub.Alerts(cmd.Context(), url.Values{"state": {"open"}, "device": {id}, "limit": {"1000"}})
			if err != nil {
				return err
			}
			if asJSON {
				if alerts == nil {
					alerts = []fleet.Alert{} // no alerts is [], not null
				}
				return json.NewEncoder(c.stdout).Encode(map[string]any{"device": json.RawMessage(raw), "alerts": alerts})
			}
			return writeDeviceReport(c.stdout, d, alerts, time.Now())
		},
	}
	api.flags(cmd.Flags(), fleet.RoleViewer)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"device": ..., "alerts": [...]} as JSON`)
	return cmd
}

// writeDeviceReport writes what device show prints: a header line, the doors, the readings and
// the open alerts.
func writeDeviceReport(w io.Writer, d *fleethttp.DeviceView, alerts []fleet.Alert, now time.Time) error {
	fmt.Fprintf(w, "%s  %s at %s  health %s  %s\n", d.ID, d.Kind, d.Site, healthText(d), presenceText(d.Presence, now))
	if len(d.Labels) > 0 {
		fmt.Fprintf(w, "labels: %s\n", formatLabels(d.Labels))
	}
	live := d.Live
	if live == nil {
		fmt.Fprintln(w, "\nno telemetry since the hub started")
	} else {
		state := map[int]wire.DoorState{}
		for _, s := range live.Doors {
			state[s.Door] = s
		}
		temps := map[int]*float64{}
		if live.Snapshot != nil {
			for _, s := range live.Snapshot.Doors {
				temps[s.Door] = s.TempC
			}
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOOR\tOPEN\tLOCKED\tTEMP")
		for door := 1; door <= d.Doors; door++ {
			open, locked := "-", "-"
			if s, ok := state[door]; ok {
				open, locked = openText(s.Open), yesNo(s.Locked)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", door, open, locked, tempText(temps[door]))
		}
		tw.Flush()
		fmt.Fprintln(w)
		writeReadings(w, live)
	}
	fmt.Fprintln(w)
	if len(alerts) == 0 {
		fmt.Fprintln(w, "no open alerts")
		return nil
	}
	fmt.Fprintln(w, "open alerts:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tRULE\tDOOR\tSUMMARY")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, a.Rule, doorText(a.Door), a.Summary)
	}
	return tw.Flush()
}

// writeReadings writes the latest snapshot's unit readings; compartment temperatures are in
// the door table.
func writeReadings(w io.Writer, live *fleet.LiveState) {
	s := live.Snapshot
	if s == nil {
		fmt.Fprintln(w, "no snapshot yet, only door events")
		return
	}
	fmt.Fprintf(w, "latest snapshot: seq %d at %s", s.Seq, time.UnixMilli(s.TS).Local().Format(time.DateTime))
	if live.Gaps > 0 || live.Duplicates > 0 {
		fmt.Fprintf(w, " (%d messages lost, %d received twice since the hub started)", live.Gaps, live.Duplicates)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if s.AmbientC != nil {
		fmt.Fprintf(tw, "  ambient\t%s\n", tempText(s.AmbientC))
	}
	if s.EnclosureC != nil {
		fmt.Fprintf(tw, "  enclosure\t%s\n", tempText(s.EnclosureC))
	}
	for _, t := range []struct {
		name string
		th   *wire.Thermal
	}{{"heater", s.Heater}, {"compressor", s.Compressor}} {
		if t.th != nil {
			fmt.Fprintf(tw, "  %s\t%s\n", t.name, thermalText(t.th))
		}
	}
	tw.Flush()
}

func healthText(d *fleethttp.DeviceView) string {
	if !d.Enabled {
		return "- (disabled)"
	}
	return string(d.Health)
}

// presenceText says since when a unit is connected or not.
func presenceText(p fleet.Presence, now time.Time) string {
	switch {
	case p.Online:
		s := "online since " + whenText(p.ConnectedSince, now)
		if p.Remote != "" {
			s += " from " + p.Remote
		}
		return s
	case !p.DisconnectedAt.IsZero():
		return "offline since " + whenText(p.DisconnectedAt, now)
	default:
		return "offline (not connected since the hub started)"
	}
}

func whenText(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), now.Sub(t).Round(time.Second))
}

func tempText(t *float64) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f °C", *t)
}

func thermalText(t *wire.Thermal) string {
	on := "off"
	if t.On {
		on = "on"
	}
	return fmt.Sprintf("%s, setpoint %.1f °C, duty %.0f%%", on, t.SetpointC, t.Duty*100)
}

func openText(open bool) string {
	if open {
		return "open"
	}
	return "closed"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func doorText(door int) string {
	if door == 0 {
		return "-"
	}
	return strconv.Itoa(door)
}
