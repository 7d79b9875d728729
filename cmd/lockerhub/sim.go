package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/edge-agent/simctl"
)

// simCmd is `lockerhub sim`: faults and conditions on demand in a running simulator, through
// its control surface (simctl). It parses and prints; the simulator does the work.
func (c *cli) simCmd() *cobra.Command {
	client := &simctl.Client{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Drive a running simulator (simulate, demo or a simulated edge-agent): faults, temperature, network, people, keypad",
		Long: `sim talks to the control surface of a running "lockerhub simulate", "lockerhub demo" or
edge-agent with simulated hardware (--control, default $LOCKERHUB_SIM_CONTROL or ` + simctl.DefaultAddr + `).
Faults set here stay until cleared here. Fault kinds: ` + strings.Join(simctl.FaultNames(), ", ") + `;
jammed, ajar and forced take --door. See docs/simulator.md.`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&client.Addr, "control", cmp.Or(os.Getenv("LOCKERHUB_SIM_CONTROL"), simctl.DefaultAddr),
		"address of the simulator's control surface")
	cmd.AddCommand(c.simListCmd(client), c.simFaultCmd(client), c.simAmbientCmd(client), c.simNetworkCmd(client), c.simPeopleCmd(client), c.simKeypadCmd(client))
	return cmd
}

func (c *cli) simListCmd(client *simctl.Client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the simulated units, their active faults and whether people are coming",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := client.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(c.stdout).Encode(l)
			}
			w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "UNIT\tKIND\tSITE\tDOORS\tONLINE\tAMBIENT\tFAULTS")
			for _, u := range l.Units {
				ambient := "daily cycle"
				if u.AmbientC != nil {
					ambient = strconv.FormatFloat(*u.AmbientC, 'f', -1, 64) + " °C"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%v\t%s\t%s\n", u.ID, u.Kind, u.Site, u.Doors, u.Online, ambient, strings.Join(u.Faults, " "))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			switch on, available := l.People, l.PeopleAvailable; {
			case !available:
				fmt.Fprintln(c.stdout, "people: none simulated here")
			case on:
				fmt.Fprintln(c.stdout, "people: on")
			default:
				fmt.Fprintln(c.stdout, "people: off")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the control surface's JSON")
	return cmd
}

func (c *cli) simFaultCmd(client *simctl.Client) *cobra.Command {
	var r simctl.FaultRequest
	cmd := &cobra.Command{
		Use:   "fault --unit ID [--door N] KIND on|off",
		Short: "Turn a fault on or off now; it stays until turned off",
		Long: `fault turns a fault of one unit on or off. Kinds: ` + strings.Join(simctl.FaultNames(), ", ") + `.
jammed, ajar and forced are per door and need --door; heater and heater-stuck exist on locker
banks, compressor on fridges; stale-telemetry keeps the unit connected but stops its snapshots.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			on, err := onOff(args[1], "on", "off")
			if err != nil {
				return err
			}
			if r.Unit == "" {
				return errors.New("--unit is required")
			}
			r.Fault, r.On = hardware.Fault(args[0]), on
			u, err := client.SetFault(cmd.Context(), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: faults now: %s\n", u.ID, cmp.Or(strings.Join(u.Faults, " "), "none"))
			return nil
		},
	}
	cmd.Flags().StringVar(&r.Unit, "unit", "", "unit id (required)")
	cmd.Flags().IntVar(&r.Door, "door", 0, "door number, for jammed, ajar and forced")
	return cmd
}

// simAmbientCmd parses its own flags: a temperature such as -15 would otherwise be taken for
// a shorthand flag. Any argument that is a number is the temperature.
func (c *cli) simAmbientCmd(client *simctl.Client) *cobra.Command {
	var site string
	cmd := &cobra.Command{
		Use:                "ambient [--site S] CELSIUS|cycle",
		Short:              "Hold a site's outside temperature (every unit's without --site), or return it to the daily cycle",
		DisableFlagParsing: true,
	}
	cmd.Flags().StringVar(&site, "site", "", "site whose units to change (default: every unit)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var flags, rest []string
		for _, a := range args {
			if _, err := strconv.ParseFloat(a, 64); err == nil {
				rest = append(rest, a)
			} else {
				flags = append(flags, a)
			}
		}
		fs := cmd.Flags()
		fs.AddFlagSet(cmd.InheritedFlags())
		if err := fs.Parse(flags); err != nil {
			return err
		}
		if help, _ := fs.GetBool("help"); help {
			return cmd.Help()
		}
		rest = append(rest, fs.Args()...)
		if len(rest) != 1 {
			return fmt.Errorf("want one temperature in °C (such as -15) or cycle, got %q", rest)
		}
		r := simctl.AmbientRequest{Site: site}
		if rest[0] != "cycle" {
			v, err := strconv.ParseFloat(rest[0], 64)
			if err != nil {
				return fmt.Errorf("temperature %q: want a number of °C or cycle", rest[0])
			}
			r.C = &v
		}
		a, err := client.SetAmbient(cmd.Context(), r)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "ambient of %d units set to %s\n", len(a.Units), rest[0])
		return nil
	}
	return cmd
}

func (c *cli) simNetworkCmd(client *simctl.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "network ID down|up",
		Short: "Take a unit's network down (it goes offline, its outbox keeps its data) or bring it back",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			up, err := onOff(args[1], "up", "down")
			if err != nil {
				return err
			}
			if _, err := client.SetNetwork(cmd.Context(), simctl.NetworkRequest{Unit: args[0], Up: up}); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: network %s\n", args[0], args[1])
			return nil
		},
	}
}

func (c *cli) simKeypadCmd(client *simctl.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "keypad ID CODE",
		Short: "Type a pickup code at a unit's keypad, as a resident collecting a parcel does",
		Long: `keypad types CODE at the unit's keypad. The unit's agent checks it against the code set the
hub sent and reports what it did to the hub (accepted, wrong, expired, used, locked-out): follow
it with "lockerhub tail ID".`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := client.EnterCode(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: code entered at the keypad\n", args[0])
			return nil
		},
	}
}

func (c *cli) simPeopleCmd(client *simctl.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "people on|off",
		Short: "Turn the simulated carriers (deliveries) and residents (pickups) on or off",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			on, err := onOff(args[0], "on", "off")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if err := client.SetPeople(ctx, on); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "people %s\n", args[0])
			return nil
		},
	}
}

// onOff parses a switch argument that must be yes or no.
func onOff(arg, yes, no string) (bool, error) {
	switch arg {
	case yes:
		return true, nil
	case no:
		return false, nil
	}
	return false, fmt.Errorf("%q: want %s or %s", arg, yes, no)
}
