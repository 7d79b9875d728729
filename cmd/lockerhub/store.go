package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// storeCmd works on the store as a whole: the database store.url names, or SQLite in data_dir.
func (c *cli) storeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Move the hub's store between SQLite and PostgreSQL"}
	cmd.AddCommand(c.storeCopyCmd())
	return cmd
}

func (c *cli) storeCopyCmd() *cobra.Command {
	var to, toDir string
	cmd := &cobra.Command{
		Use:   "copy (--to postgres://... | --to-dir DIR)",
		Short: "Copy the whole store into an empty PostgreSQL database or SQLite data directory",
		Long: `copy copies the store the configuration names (store.url, or SQLite in data_dir, as for every
other command) into another, empty one: every device, API token, command, alert and audit
entry, with their ids, secret hashes and times, in one transaction.

Stop the hub first (every hub, if the source is a cluster's PostgreSQL): the source is read in
one snapshot, and what a hub writes after it is not copied.

  --to postgres://user:password@host:5432/lockerhub?sslmode=verify-full
      PostgreSQL: the upgrade from one hub to a cluster (docs/deployment.md). The database
      must exist; its tables are created here.
  --to-dir DIR
      SQLite in DIR/lockerhub.db: the way back from a cluster to one hub.

The destination must hold no lockerhub data: copy refuses a store with any device, token,
command, alert or audit entry in it, so it never merges into or overwrites a live store; and it
refuses to copy a store onto itself. It refuses a source whose audit trail does not verify (see
lockerhub audit verify), copying nothing, and verifies the trail again on the copy after the
commit. It prints the rows copied per table and the audit head, which "lockerhub audit verify"
shows on the source too. Passwords are never printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if (to == "") == (toDir == "") {
				return fleet.Errorf(fleet.EINVALID, "give the destination: --to postgres://... or --to-dir DIR, one of them")
			}
			if to != "" && !isPostgresURL(to) {
				// Not echoed: it may hold a password.
				return fleet.Errorf(fleet.EINVALID, "--to takes a postgres:// or postgresql:// URL; for SQLite use --to-dir DIR")
			}
			return c.withDB(ctx, func(src *sqldb.DB) error {
				dst, err := sqldb.Open(ctx, to, toDir)
				if err != nil {
					return fmt.Errorf("destination: %w", err)
				}
				defer dst.Close()
				stats, err := sqldb.Copy(ctx, dst, src)
				if err != nil {
					return err
				}
				return printCopy(c, stats)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "PostgreSQL store to copy into, as store.url: postgres://user:password@host:port/db?...")
	f.StringVar(&toDir, "to-dir", "", "data directory to copy into, as SQLite (DIR/lockerhub.db)")
	return cmd
}

func isPostgresURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// printCopy prints what Copy copied: the stores (as sqldb names them, without passwords), the
// rows per table and the verified audit head.
func printCopy(c *cli, s sqldb.CopyStats) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "from\t%s\n", s.From)
	fmt.Fprintf(tw, "to\t%s\n", s.To)
	for _, row := range []struct {
		table string
		n     int64
	}{{"devices", s.Devices}, {"tokens", s.Tokens}, {"commands", s.Commands}, {"alerts", s.Alerts}, {"parcels", s.Parcels}, {"codesets", s.CodeSets}, {"audit", s.Audit}} {
		fmt.Fprintf(tw, "%s\t%d\n", row.table, row.n)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	head := s.AuditHeadHash
	if head == "" {
		head = "-"
	}
	_, err := fmt.Fprintf(c.stdout, "audit chain verified: %d entries, head %d %s\n", s.Verified, s.AuditHead, head)
	return err
}
