package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
)

// tokenCmd manages API tokens in the data directory's database, like the device commands.
func (c *cli) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (viewer, technician, operator, admin, carrier)"}
	cmd.AddCommand(c.tokenCreateCmd(), c.tokenListCmd(), c.tokenRevokeCmd())
	return cmd
}

func (c *cli) tokenCreateCmd() *cobra.Command {
	var (
		t      fleet.Token
		role   string
		sites  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--sites a,b]",
		Short: "Create an API token and print it (shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t.Role, t.Sites = fleet.Role(role), fleet.ParseSites(sites)
			return c.creating().withTokens(cmd.Context(), func(ctx context.Context, s fleet.TokenService) error {
				secret, err := s.CreateToken(ctx, &t)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(c.stdout).Encode(map[string]any{"id": t.ID, "name": t.Name, "role": t.Role, "sites": t.Sites, "token": secret})
				}
				_, err = fmt.Fprintf(c.stdout, "created token %s (%s, %s, %s)\ntoken: %s\nStore it now: it cannot be shown again.\n",
					t.ID, t.Name, t.Role, scopeText(t.Sites), secret)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.Name, "name", "", "who or what the token is for (required)")
	f.StringVar(&role, "role", "", "viewer, technician, operator, admin, or carrier (delivers parcels only) (required)")
	f.StringVar(&sites, "sites", "", "comma-separated sites the token is limited to (default: all)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("role")
	return cmd
}

func (c *cli) tokenListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withTokens(cmd.Context(), func(ctx context.Context, s fleet.TokenService) error {
				tokens, err := s.FindTokens(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					if tokens == nil {
						tokens = []*fleet.Token{}
					}
					return json.NewEncoder(c.stdout).Encode(tokens)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tROLE\tSITES\tCREATED\tREVOKED")
				for _, t := range tokens {
					revoked := "-"
					if t.RevokedAt != nil {
						revoked = t.RevokedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, scopeText(t.Sites), t.CreatedAt.Format(time.RFC3339), revoked)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (c *cli) tokenRevokeCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "revoke --id ID",
		Short: "Revoke an API token; it is refused from the next request on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withTokens(cmd.Context(), func(ctx context.Context, s fleet.TokenService) error {
				if err := s.RevokeToken(ctx, id); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.stdout, "token %s revoked\n", id)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "token id (required)")
	cmd.MarkFlagRequired("id")
	return cmd
}

func scopeText(sites []string) string {
	if len(sites) == 0 {
		return "all sites"
	}
	return "sites " + strings.Join(sites, ",")
}
