package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// reportCmd is `lockerhub report`: reports the hub computes from its telemetry history.
func (c *cli) reportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Reports from the fleet's telemetry history (through the hub's API)"}
	cmd.AddCommand(c.coldChainCmd())
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
			q := url.Values{}
			for k, v := range map[string]string{"site": site, "from": from, "to": to} {
				if v != "" {
					q.Set(k, v)
				}
			}
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
