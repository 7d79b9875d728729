package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// auditCmd checks and exports the audit trail in the data directory's database. Both only
// read, so they are safe while the hub runs and appends.
func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export the tamper-evident audit trail"}
	cmd.AddCommand(c.auditVerifyCmd(), c.auditExportCmd())
	return cmd
}

func (c *cli) auditVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain and print its head",
		Long: `Check the audit trail's hash chain: every entry must match its hash and the entry before
it, and the trail must end at the recorded head. On success it prints the head (last seq and
hash; "-" for an empty trail). Record the head somewhere else from time to time: whoever can
write the database can rewrite the whole chain consistently, but not make it lead to a head
recorded before.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDB(cmd.Context(), func(db *sqldb.DB) error {
				res, err := sqldb.NewAuditService(db).Verify(cmd.Context())
				if err != nil {
					return err
				}
				if !res.OK {
					return fmt.Errorf("audit trail broken at entry %d: %s", res.FirstBad, res.Problem)
				}
				head := res.HeadHash
				if head == "" {
					head = "-"
				}
				_, err = fmt.Fprintf(c.stdout, "audit trail intact: %d entries, head %d %s\n", res.Entries, res.HeadSeq, head)
				return err
			})
		},
	}
}

func (c *cli) auditExportCmd() *cobra.Command {
	var (
		f     fleet.AuditFilter
		since string
	)
	cmd := &cobra.Command{
		Use:   "export [--since TIME] [--device ID]",
		Short: "Write audit entries as JSON lines, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				var err error
				if f.Since, err = time.Parse(time.RFC3339, since); err != nil {
					return fleet.Errorf(fleet.EINVALID, "invalid --since %q: want RFC 3339, e.g. 2026-03-01T00:00:00Z", since)
				}
			}
			enc := json.NewEncoder(c.stdout)
			return c.withDB(cmd.Context(), func(db *sqldb.DB) error {
				return sqldb.NewAuditService(db).Entries(cmd.Context(), f, func(e *fleet.AuditEntry) error { return enc.Encode(e) })
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&f.Device, "device", "", "only entries about this device")
	return cmd
}
