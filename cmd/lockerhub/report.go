package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// reportCmd is `lockerhub report`: reports the hub computes from its telemetry history.
func (c *cli) reportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Reports from the fleet's telemetry history and parcels (through the hub's API)"}
	cmd.AddCommand(c.coldChainCmd(), c.deliveriesCmd())
	return cmd
}

// coldChainCmd is `lockerhub report cold-chain`: GET /api/v1/reports/cold-chain as CSV.
func (c *cli) coldChainCmd() *cobra.Command {
	var (
		api                 hubAPI
		site, from, to, out string
	)
	cmd := &cobra.Command{
		Use:   "cold-chain [--site S] [--from D] [--to D] [--out FILE]",
		Short: "Food-safety record per fridge compartment and UTC day, as CSV (viewer token)",
		Long: `cold-chain writes, for every compartment of the fridge units in the token's scope (at --site
if given) and every UTC day from --from to --to, the minutes above the unit's cold-holding
threshold (the alert rules': 5 °C chilled, -12 °C for units labelled class=freezer by default),
the peak temperature, the minutes without data and those of a stuck sensor (untrusted), as CSV:

  date,site,device,door,class,threshold_c,minutes_above,peak_c,minutes_no_data,samples,minutes_untrusted

--from and --to are dates (YYYY-MM-DD, UTC, both included) or RFC 3339 times; by default the
last 7 full days. At most 93 days. The CSV goes to stdout, or to --out, which is replaced only
once the whole report has arrived. The token comes from --token or LOCKERHUB_TOKEN, the hub
from --hub.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := reportQuery(site, from, to)
			hub, err := api.client()
			if err != nil {
				return err
			}
			_, csv, err := hub.Do(cmd.Context(), http.MethodGet, "/api/v1/reports/cold-chain?"+q.Encode(), nil,
				http.Header{"Accept": {"text/csv"}})
			if err != nil {
				return err
			}
			if out == "" {
				_, err := c.stdout.Write(csv)
				return err
			}
			if err := atomicfile.Write(filepath.Dir(out), filepath.Base(out), csv, true); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "cold-chain report: %d rows written to %s\n", max(0, bytes.Count(csv, []byte("\n"))-1), out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "only this site")
	f.StringVar(&from, "from", "", "first day (YYYY-MM-DD) or start time (RFC 3339); default 7 days before --to")
	f.StringVar(&to, "to", "", "last day, included (YYYY-MM-DD), or end time (RFC 3339); default yesterday")
	f.StringVar(&out, "out", "", "write the CSV to this file instead of stdout")
	api.flags(f, fleet.RoleViewer)
	return cmd
}

// deliveriesCmd is `lockerhub report deliveries`: GET /api/v1/reports/deliveries as tables, or
// as the hub's CSV or JSON.
func (c *cli) deliveriesCmd() *cobra.Command {
	var (
		api            hubAPI
		site, from, to string
		asCSV, asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "deliveries [--site S] [--from D] [--to D] [--csv | --json]",
		Short: "What became of the parcels delivered in a period, per carrier and compartment kind (viewer token)",
		Long: `deliveries reports on the parcels delivered (or reserved) at the token's sites (at --site if
given) from --from to --to, as they are now: how many were dropped off, picked up (and of those,
while the unit was offline), retrieved by staff, expired, cancelled and overdue (in their
compartment longer than the parcel-overdue limits: 72 h dry, 24 h fridge, 12 h freezer by
default); per carrier, and per compartment kind with the dwell times (drop-off to pickup or
retrieval) at the 50th, 90th and 99th percentiles; and the most compartments occupied at once.

--csv prints the hub's CSV, one row per site, compartment kind and carrier:

  site,compartment,carrier,delivered,dropped_off,picked_up,retrieved,expired,cancelled,overdue,
  offline_pickups,dwell_count,dwell_p50_h,dwell_p90_h,dwell_p99_h

--from and --to are dates (YYYY-MM-DD, UTC, both included) or RFC 3339 times; by default the
last 7 full days. At most 93 days. The token comes from --token or LOCKERHUB_TOKEN, the hub
from --hub.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asCSV && asJSON {
				return fleet.Errorf(fleet.EINVALID, "--csv and --json: choose one")
			}
			q := reportQuery(site, from, to)
			hub, err := api.client()
			if err != nil {
				return err
			}
			if asCSV {
				q.Set("format", "csv")
				_, csv, err := hub.Do(cmd.Context(), http.MethodGet, "/api/v1/reports/deliveries?"+q.Encode(), nil, nil)
				if err == nil {
					_, err = c.stdout.Write(csv)
				}
				return err
			}
			r, raw, err := hub.Deliveries(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := c.stdout.Write(raw)
				return err
			}
			return writeDeliveries(c.stdout, r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "only this site")
	f.StringVar(&from, "from", "", "first day (YYYY-MM-DD) or start time (RFC 3339); default 7 days before --to")
	f.StringVar(&to, "to", "", "last day, included (YYYY-MM-DD), or end time (RFC 3339); default yesterday")
	f.BoolVar(&asCSV, "csv", false, "print the CSV form: one row per site, compartment kind and carrier")
	f.BoolVar(&asJSON, "json", false, "print the hub's JSON answer")
	api.flags(f, fleet.RoleViewer)
	return cmd
}

// writeDeliveries writes a deliveries report as a summary line and tables.
func writeDeliveries(w io.Writer, r *fleethttp.DeliveryReportAnswer) error {
	where := "all sites"
	if r.Site != "" {
		where = r.Site
	}
	t := r.Total
	fmt.Fprintf(w, "deliveries at %s from %s to %s: %d delivered, %d dropped off, %d picked up (%d while offline), %d retrieved, %d expired, %d cancelled, %d overdue\n",
		where, r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339), t.Delivered, t.DroppedOff, t.PickedUp, t.OfflinePickups,
		t.Retrieved, t.Expired, t.Cancelled, t.Overdue)
	if t.Delivered == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CARRIER\tDELIVERED\tDROPPED OFF\tPICKED UP\tOFFLINE\tRETRIEVED\tEXPIRED\tCANCELLED\tOVERDUE")
	for _, c := range r.Carriers {
		name := c.Carrier
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", name, c.Delivered, c.DroppedOff, c.PickedUp, c.OfflinePickups,
			c.Retrieved, c.Expired, c.Cancelled, c.Overdue)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "COMPARTMENT\tDELIVERED\tOVERDUE\tDWELL P50\tP90\tP99")
	for _, k := range r.Compartments {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", k.Kind, k.Delivered, k.Overdue, dwellText(k.Dwell, k.Dwell.P50),
			dwellText(k.Dwell, k.Dwell.P90), dwellText(k.Dwell, k.Dwell.P99))
	}
	tw.Flush()
	var peak fleet.UtilisationSample
	for _, s := range r.Utilisation {
		if s.Occupied > peak.Occupied {
			peak = s
		}
	}
	if peak.Occupied > 0 {
		fmt.Fprintf(w, "\nmost compartments occupied at once: %d, at %s\n", peak.Occupied, peak.At.UTC().Format(time.RFC3339))
	}
	return nil
}

// dwellText is a dwell percentile in hours and minutes, or "-" when no parcel left its
// compartment.
func dwellText(d fleet.DwellStats, seconds float64) string {
	if d.Count == 0 {
		return "-"
	}
	return (time.Duration(seconds) * time.Second).Round(time.Minute).String()
}

// reportQuery is the query of a report's range and site, leaving out what was not given so
// that the hub applies its defaults.
func reportQuery(site, from, to string) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"site": site, "from": from, "to": to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}
