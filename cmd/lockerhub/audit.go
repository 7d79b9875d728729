package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// auditCmd checks and exports the audit trail in the data directory's database, and prints
// its head. All of them only read, so they are safe while the hub runs and appends.
func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export the tamper-evident audit trail"}
	cmd.AddCommand(c.auditVerifyCmd(), c.auditHeadCmd(), c.auditExportCmd())
	return cmd
}

func (c *cli) auditVerifyCmd() *cobra.Command {
	var heads []string
	cmd := &cobra.Command{
		Use:   "verify [--head SEQ:HASH]...",
		Short: "Check the audit trail's hash chain, and that it still holds witnessed heads",
		Long: `Check the audit trail's hash chain: every entry must match its hash and the entry before
it, and the trail must end at the recorded head. On success it prints the head (last seq and
hash; "-" for an empty trail).

Whoever can write the database can rewrite the whole chain consistently, or cut entries off its
end and rewind the head, and the chain left verifies. Keep heads somewhere else (lockerhub
audit head prints one; the hub logs and exports them) and give them with --head: verify then
also fails if an entry witnessed so is missing or differs. Entries appended after the last
witnessed head can still be cut unnoticed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			witnessed := make([]fleet.AuditHead, len(heads))
			for i, h := range heads {
				var err error
				if witnessed[i], err = fleet.ParseAuditHead(h); err != nil {
					return fmt.Errorf("--head: %w", err)
				}
			}
			return c.withDB(cmd.Context(), func(db *sqldb.DB) error {
				res, err := sqldb.NewAuditService(db).Verify(cmd.Context(), witnessed...)
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
				if _, err = fmt.Fprintf(c.stdout, "audit trail intact: %d entries, head %d %s\n", res.Entries, res.HeadSeq, head); err != nil {
					return err
				}
				for _, w := range witnessed {
					if _, err := fmt.Fprintf(c.stdout, "witnessed head %s found\n", w); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&heads, "head", nil, "a head recorded before, SEQ:HASH as lockerhub audit head prints it, that the trail must still hold; repeatable")
	return cmd
}

func (c *cli) auditHeadCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "head [--json]",
		Short: "Print the audit trail's head, SEQ:HASH, to keep elsewhere as a witness",
		Long: `Print the audit trail's head, the last entry's seq and hash, as SEQ:HASH: keep it somewhere
whoever can write the database cannot reach (an operator's log, a ticket, another system), and
pass it later to lockerhub audit verify --head. With --json: {"seq", "hash", "time"}, time
being when that entry was appended. It reads the head only, cheaply; it does not check the
chain (audit verify does). An empty trail has no head yet: that is an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDB(cmd.Context(), func(db *sqldb.DB) error {
				head, at, err := sqldb.NewAuditService(db).Head(cmd.Context())
				if err != nil {
					return err
				}
				if head.Seq == 0 {
					return fleet.Errorf(fleet.ENOTFOUND, "the audit trail is empty: there is no head to witness yet")
				}
				if asJSON {
					return json.NewEncoder(c.stdout).Encode(struct {
						fleet.AuditHead
						Time time.Time `json:"time,omitzero"`
					}{head, at})
				}
				_, err = fmt.Fprintln(c.stdout, head)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
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
