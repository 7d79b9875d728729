package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
)

// doorCmd is `lockerhub unlock` or `lockerhub lock`: an operator's command through the hub's API,
// with the same token and roles as any other API client.
func (c *cli) doorCmd(verb string) *cobra.Command {
	var (
		device, reason, hub, token, key string
		door                            int
		timeout                         time.Duration
		noWait, asJSON                  bool
	)
	cmd := &cobra.Command{
		Use:   verb + " --device ID --door N --reason TEXT",
		Short: fmt.Sprintf("%s a door remotely through the hub's API (operator token)", verb),
		Long: fmt.Sprintf(`%s sends the command, waits for the device's result and prints it with the
latency. It exits non-zero unless the device confirmed the command. The token comes from --token
or LOCKERHUB_TOKEN, the hub from --hub.`, verb),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("LOCKERHUB_TOKEN")
			}
			if token == "" {
				return errors.New("no API token: pass --token or set LOCKERHUB_TOKEN")
			}
			body, _ := json.Marshal(map[string]string{"reason": reason})
			q := url.Values{"wait": {strconv.FormatBool(!noWait)}, "timeout": {timeout.String()}}
			u := fmt.Sprintf("%s/api/v1/devices/%s/doors/%d/%s?%s", hub, url.PathEscape(device), door, verb, q.Encode())
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			var res struct {
				Command   *fleet.Command `json:"command"`
				LatencyMS int64          `json:"latency_ms"`
				Error     *fleet.Error   `json:"error"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("hub answered %s: %s", resp.Status, raw)
			}
			if asJSON {
				c.stdout.Write(raw)
			}
			switch {
			case res.Error != nil:
				return fmt.Errorf("%s (HTTP %d)", res.Error.Message, resp.StatusCode)
			case res.Command == nil:
				return fmt.Errorf("hub answered %s without a command", resp.Status)
			case resp.StatusCode == http.StatusAccepted:
				if !asJSON {
					fmt.Fprintf(c.stdout, "command %s sent to %s; see GET /api/v1/commands/%s\n", res.Command.ID, device, res.Command.ID)
				}
				return nil
			}
			cm := res.Command
			if !asJSON {
				fmt.Fprintf(c.stdout, "%s door %d of %s: %s in %s (command %s)\n", verb, door, device, cm.Outcome,
					time.Duration(res.LatencyMS)*time.Millisecond, cm.ID)
			}
			if cm.Status != fleet.CommandSucceeded {
				return fmt.Errorf("%s door %d of %s: %s: %s", verb, door, device, cm.Outcome, cm.Detail)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "device id (required)")
	f.IntVar(&door, "door", 0, "door number (required)")
	f.StringVar(&reason, "reason", "", "why, for the chain of custody (required)")
	f.StringVar(&hub, "hub", "http://127.0.0.1:8080", "the hub's HTTP address")
	f.StringVar(&token, "token", "", "API token with the operator role (default $LOCKERHUB_TOKEN)")
	f.StringVar(&key, "idempotency-key", "", "a key that makes a retried request return the first command instead of sending another")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long the device has to act; the command expires after it")
	f.BoolVar(&noWait, "no-wait", false, "return as soon as the command is sent")
	f.BoolVar(&asJSON, "json", false, "print the hub's JSON answer")
	for _, name := range []string{"device", "door", "reason"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}
