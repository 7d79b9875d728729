package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// tailCmd is `lockerhub tail`: one device's live events from the hub's event stream.
func (c *cli) tailCmd() *cobra.Command {
	var (
		api    hubAPI
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "tail ID [--json]",
		Short: "Follow a unit's telemetry, door events, alerts and commands as they happen (viewer token)",
		Long: `tail follows the hub's event stream (GET /api/v1/stream?device=ID) for one unit until Ctrl-C,
printing a line per event: telemetry snapshots (doors open, temperatures, heater or compressor),
door events (opened, closed, locked, unlocked, and why), alerts (fired, acknowledged, resolved),
commands (sent, succeeded, failed, expired), changes of the unit's presence or health, and
events missed when the terminal did not keep up.
--json prints every event of the stream as one JSON line {"event": NAME, "data": ...}. The
token comes from --token or LOCKERHUB_TOKEN, the hub from --hub.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hub, err := api.client()
			if err != nil {
				return err
			}
			resp, err := hub.Send(ctx, http.MethodGet, "/api/v1/stream?"+url.Values{"device": {args[0]}}.Encode(), nil,
				http.Header{"Accept": {"text/event-stream"}})
			var apiErr *hubclient.Error
			if err != nil && resp != nil && resp.StatusCode == http.StatusNotFound && !errors.As(err, &apiErr) {
				// A 404 that is not the API's own "device not found".
				return errors.New("this hub has no event stream (GET /api/v1/stream answered 404): it is older than this command")
			}
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
				return fmt.Errorf("GET /api/v1/stream answered %q, not an event stream: is the hub older than this command?", ct)
			}
			fmt.Fprintf(c.stderr, "following %s; Ctrl-C stops\n", args[0])
			p := &tailPrinter{w: c.stdout, asJSON: asJSON}
			events := hubclient.NewEventReader(resp.Body)
			for {
				ev, err := events.Next()
				switch {
				case ctx.Err() != nil: // Ctrl-C
					return nil
				case errors.Is(err, io.EOF):
					return errors.New("the hub closed the event stream")
				case err != nil:
					return fmt.Errorf("event stream: %w", err)
				}
				if err := p.print(ev, time.Now()); err != nil {
					// One event the printer cannot read is no reason to stop following.
					fmt.Fprintf(c.stderr, "lockerhub: %s event: %v\n", ev.Name, err)
				}
			}
		},
	}
	api.flags(cmd.Flags(), fleet.RoleViewer)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print each event as a JSON line {"event": NAME, "data": ...}`)
	return cmd
}

func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// tailPrinter prints a device's stream events, one line each.
type tailPrinter struct {
	w      io.Writer
	asJSON bool
	// doors is the last known state of each door, so that a door event can say what changed.
	doors map[int]wire.DoorState
	// presence is the last presence and health printed: device events repeat them.
	presence string
}

// print prints ev; now is the time for events that carry none of their own.
func (p *tailPrinter) print(ev hubclient.Event, now time.Time) error {
	if p.asJSON {
		data := any(json.RawMessage(ev.Data))
		if !json.Valid([]byte(ev.Data)) {
			data = ev.Data
		}
		b, err := json.Marshal(struct {
			Event string `json:"event"`
			Data  any    `json:"data"`
		}{ev.Name, data})
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	if p.doors == nil {
		p.doors = map[int]wire.DoorState{}
	}
	var line string
	var err error
	switch ev.Name {
	case "telemetry":
		line, err = decodeAnd(ev.Data, p.telemetry)
	case "door":
		line, err = decodeAnd(ev.Data, p.door)
	case "keypad":
		line, err = decodeAnd(ev.Data, keypadLine)
	case "alert":
		line, err = decodeAnd(ev.Data, alertLine)
	case "command":
		line, err = decodeAnd(ev.Data, commandLine)
	case "device":
		line, err = decodeAnd(ev.Data, func(d fleethttp.DeviceView) string { return p.device(d, now) })
	case "lost":
		line, err = decodeAnd(ev.Data, func(l struct{ Events int64 }) string {
			return fmt.Sprintf("%s %d events missed so far: this terminal did not keep up with the stream", clock(now), l.Events)
		})
	default:
		// health is the whole fleet's summary, and names this version does not know are for
		// newer clients: tail shows the one device.
		return nil
	}
	if err != nil || line == "" {
		return err
	}
	_, err = fmt.Fprintln(p.w, line)
	return err
}

// decodeAnd decodes data into a T and formats it with format.
func decodeAnd[T any](data string, format func(T) string) (string, error) {
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return "", err
	}
	return format(v), nil
}

func clock(t time.Time) string { return t.Local().Format(time.TimeOnly) }

func (p *tailPrinter) telemetry(t wire.Telemetry) string {
	var open []string
	var temps []string
	for _, d := range t.Doors {
		p.doors[d.Door] = d
		if d.Open {
			open = append(open, strconv.Itoa(d.Door))
		}
		if d.TempC != nil {
			temps = append(temps, fmt.Sprintf("%d: %s", d.Door, tempText(d.TempC)))
		}
	}
	parts := []string{fmt.Sprintf("%s telemetry seq %d", clock(time.UnixMilli(t.TS)), t.Seq)}
	if len(open) == 0 {
		parts = append(parts, "doors closed")
	} else {
		parts = append(parts, "open "+strings.Join(open, ","))
	}
	if t.AmbientC != nil {
		parts = append(parts, "ambient "+tempText(t.AmbientC))
	}
	if t.EnclosureC != nil {
		parts = append(parts, "enclosure "+tempText(t.EnclosureC))
	}
	if len(temps) > 0 {
		parts = append(parts, "compartments "+strings.Join(temps, ", "))
	}
	if t.Heater != nil {
		parts = append(parts, "heater "+thermalText(t.Heater))
	}
	if t.Compressor != nil {
		parts = append(parts, "compressor "+thermalText(t.Compressor))
	}
	if t.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d snapshots dropped by the unit", t.Dropped))
	}
	return strings.Join(parts, "  ")
}

// door says what a door event changed, compared with the door's last known state; it reports
// the state itself when there is none.
func (p *tailPrinter) door(e wire.Event) string {
	var what []string
	prev, known := p.doors[e.Door]
	if !known || prev.Open != e.Open {
		what = append(what, map[bool]string{true: "opened", false: "closed"}[e.Open])
	}
	if !known || prev.Locked != e.Locked {
		what = append(what, lockedText(e.Locked))
	}
	if len(what) == 0 {
		what = append(what, "reported again: "+openText(e.Open)+", "+lockedText(e.Locked))
	}
	p.doors[e.Door] = wire.DoorState{Door: e.Door, Open: e.Open, Locked: e.Locked}
	line := fmt.Sprintf("%s door %d %s", clock(time.UnixMilli(e.TS)), e.Door, strings.Join(what, ", "))
	switch {
	case e.Parcel != "":
		line += fmt.Sprintf(" (cause: %s, parcel %s)", e.Cause, e.Parcel)
	case e.Via != wire.ViaNone:
		line += fmt.Sprintf(" (cause: %s, via %s)", e.Cause, e.Via)
	case e.Cause != wire.CauseNone:
		line += fmt.Sprintf(" (cause: %s)", e.Cause)
	}
	return line
}

// keypadLine says what the unit did with a code entered at its keypad.
func keypadLine(e wire.Event) string {
	var what string
	switch e.Keypad {
	case wire.KeypadAccepted:
		what = fmt.Sprintf("code of parcel %s accepted, door %d released", e.Parcel, e.Door)
	case wire.KeypadWrong:
		what = fmt.Sprintf("wrong code (%d in a row)", e.Failures)
	case wire.KeypadExpired, wire.KeypadUsed:
		what = fmt.Sprintf("code of parcel %s refused: %s", e.Parcel, e.Keypad)
	case wire.KeypadLockedOut:
		what = fmt.Sprintf("locked out until %s after %d wrong codes in a row", clock(time.UnixMilli(e.LockedUntil)), e.Failures)
	default:
		what = string(e.Keypad)
	}
	return clock(time.UnixMilli(e.TS)) + " keypad " + what
}

func lockedText(locked bool) string {
	if locked {
		return "locked"
	}
	return "unlocked"
}

// device prints a device event only when the unit's presence or health changed: the stream
// sends one whenever anything about the unit does.
func (p *tailPrinter) device(d fleethttp.DeviceView, now time.Time) string {
	if d.Live != nil {
		for _, s := range d.Live.Doors {
			p.doors[s.Door] = s
		}
	}
	presence := "offline"
	if d.Presence.Online {
		presence = "online"
	}
	presence += ", health " + healthText(&d)
	if presence == p.presence {
		return ""
	}
	p.presence = presence
	return fmt.Sprintf("%s device %s", clock(now), presence)
}

func alertLine(ev fleet.AlertEvent) string {
	a := ev.Alert
	at, detail := a.FiredAt, a.Summary
	switch ev.Kind {
	case fleet.AlertEventAcknowledged:
		at, detail = a.AckedAt, byText(actorText(a.AckedBy, a.AckedByName), a.AckNote)
	case fleet.AlertEventResolved:
		at, detail = a.ResolvedAt, byText(actorText(a.ResolvedBy, a.ResolvedByName), a.ResolveNote)
	}
	line := fmt.Sprintf("%s alert %d %s: %s %s", clock(at), a.ID, ev.Kind, a.Severity, a.Rule)
	if a.Door != 0 {
		line += fmt.Sprintf(" door %d", a.Door)
	}
	return line + ": " + detail
}

// actorText is who did something as people read it: a token's name with its id, which stays
// the same when another token gets the same name; the id alone for the hub's own actors and
// for records made before names were kept.
func actorText(id, name string) string {
	if name == "" {
		return id
	}
	return name + " (" + id + ")"
}

// byText is who acknowledged or resolved an alert, with their note if any.
func byText(by, note string) string {
	if note == "" {
		return "by " + by
	}
	return fmt.Sprintf("by %s: %s", by, note)
}

func commandLine(cm fleet.Command) string {
	at := cm.CreatedAt
	for _, t := range []*time.Time{cm.SentAt, cm.CompletedAt} {
		if t != nil && t.After(at) {
			at = *t
		}
	}
	line := fmt.Sprintf("%s command %s %s", clock(at), cm.ID, cm.Type)
	if cm.Door != 0 {
		line += fmt.Sprintf(" door %d", cm.Door)
	}
	if cm.Target != "" {
		line += " " + cm.Target
	}
	if cm.SetpointC != nil {
		line += " to " + tempText(cm.SetpointC)
	}
	line += " " + string(cm.Status)
	if cm.Outcome != "" {
		line += fmt.Sprintf(" (%s)", cm.Outcome)
	}
	if cm.Detail != "" {
		line += ": " + cm.Detail
	}
	return line + fmt.Sprintf(" [by %s: %q]", actorText(cm.Actor, cm.ActorName), cm.Reason)
}
