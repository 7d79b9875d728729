package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// doorCmd is `lockerhub unlock` or `lockerhub lock`: an operator's command through the hub's API,
// with the same token and roles as any other API client.
func (c *cli) doorCmd(verb string) *cobra.Command {
	var (
		api                 hubAPI
		device, reason, key string
		door                int
		timeout             time.Duration
		noWait, asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   verb + " --device ID --door N --reason TEXT",
		Short: fmt.Sprintf("%s a door remotely through the hub's API (operator token)", verb),
		Long: fmt.Sprintf(`%s sends the command, waits for the device's result and prints it with the
latency. It exits non-zero unless the device confirmed the command: 5 when the device reported
a failure or did not answer in time. The token comes from --token
or LOCKERHUB_TOKEN, the hub from --hub.`, verb),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				// The client leaves a zero timeout to the hub's default; on the command line
				// it is a mistake.
				return fleet.Errorf(fleet.EINVALID, "timeout %s: want 1s..%s", timeout, wire.MaxCommandTTL)
			}
			hub, err := api.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+10*time.Second)
			defer cancel()
			res, err := hub.Door(ctx, hubclient.DoorRequest{Verb: verb, Device: device, Door: door, Reason: reason,
				NoWait: noWait, Timeout: timeout, IdempotencyKey: key})
			if err != nil {
				return err
			}
			if asJSON {
				c.stdout.Write(res.Raw)
			}
			if res.Status == http.StatusAccepted {
				if !asJSON {
					fmt.Fprintf(c.stdout, "command %s sent to %s; see GET /api/v1/commands/%s\n", res.Command.ID, device, res.Command.ID)
				}
				return nil
			}
			cm := res.Command
			if !asJSON {
				// The detail says what the outcome's one word does not: how long the door took to
				// open, that it was already open, or what went wrong.
				detail := ""
				if cm.Detail != "" {
					detail = ": " + cm.Detail
				}
				fmt.Fprintf(c.stdout, "%s door %d of %s: %s in %s (command %s)%s\n", verb, door, device, cm.Outcome,
					time.Duration(res.LatencyMS)*time.Millisecond, cm.ID, detail)
			}
			if cm.Status != fleet.CommandSucceeded {
				return &exitError{exitDevice, fmt.Errorf("%s door %d of %s: %s: %s", verb, door, device, cm.Outcome, cm.Detail)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "device id (required)")
	f.IntVar(&door, "door", 0, "door number (required)")
	f.StringVar(&reason, "reason", "", "why, for the chain of custody (required)")
	api.flags(f, fleet.RoleOperator)
	f.StringVar(&key, "idempotency-key", "", "a key that makes a retried request return the first command instead of sending another")
	f.DurationVar(&timeout, "timeout", commands.DefaultTimeout, "how long the device has to act; the command expires after it")
	f.BoolVar(&noWait, "no-wait", false, "return as soon as the command is sent")
	f.BoolVar(&asJSON, "json", false, "print the hub's JSON answer")
	for _, name := range []string{"device", "door", "reason"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}
