package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// maxDetailBytes is the wire contract's limit on a result's detail.
const maxDetailBytes = 256

// inbound is a message the hub sent the unit: a command or a code set.
type inbound struct {
	ch      wire.Channel
	payload []byte
}

// commandLoop takes the hub's messages in arrival order. Deciding whether to act (seen before?
// expired? valid for this unit? newer than the code set held?) happens here, one at a time, so
// a redelivered command can never race its first copy; the actions themselves run
// concurrently, since confirming an unlock takes seconds and must not hold up an unlock of
// another door.
func (a *Agent) commandLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.commands:
			switch m.ch {
			case wire.ChannelCommand:
				a.accept(ctx, m.payload)
			case wire.ChannelCodes:
				a.applyCodes(ctx, m.payload)
			default:
				a.log.Warn("message on a channel the unit does not take dropped", "channel", m.ch)
			}
		}
	}
}

// accept decides what to do with one command payload and starts the action if there is one.
func (a *Agent) accept(ctx context.Context, payload []byte) {
	cmd, decodeErr := wire.DecodeCommand(payload)
	if decodeErr != nil && (wire.ReasonOf(decodeErr) != wire.ReasonInvalid || cmd.ID == "") {
		a.log.Warn("command dropped: cannot be answered", "error", decodeErr)
		return
	}
	if rec, seen := a.state.command(cmd.ID); seen {
		if !rec.Done {
			// The agent stopped between accepting and finishing this command: it may or may not
			// have acted. Saying so is safe; acting again is not.
			rec.Outcome, rec.Detail = wire.OutcomeFailed, "interrupted by an agent restart; not retried"
			a.finish(cmd, rec)
			return
		}
		a.log.Info("duplicate command answered with its earlier result", "command", cmd.ID)
		a.result(cmd.ID, rec.Outcome, rec.Detail)
		return
	}
	now := time.Now()
	rec := commandRecord{Expires: cmd.Expires, Done: true}
	switch {
	case decodeErr != nil:
		rec.Outcome, rec.Detail = wire.OutcomeInvalid, decodeErr.Error()
	case cmd.Expired(now):
		rec.Outcome, rec.Detail = wire.OutcomeExpired, fmt.Sprintf("expired %s before it arrived", now.Sub(time.UnixMilli(cmd.Expires)).Round(time.Millisecond))
	default:
		if err := a.applicable(cmd); err != nil {
			rec.Outcome, rec.Detail = wire.OutcomeInvalid, err.Error()
		}
	}
	if rec.Outcome != "" {
		a.finish(cmd, rec)
		return
	}
	// Recorded durably before acting, so that after a crash the command is known and not redone.
	rec.Done = false
	if err := a.state.recordCommand(now, cmd.ID, rec); err != nil {
		a.log.Error("command refused: cannot record it", "command", cmd.ID, "error", err)
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		rec.Outcome, rec.Detail = a.execute(ctx, cmd)
		rec.Done = true
		a.finish(cmd, rec)
	}()
}

// applicable checks a well-formed command against this unit's hardware.
func (a *Agent) applicable(cmd wire.Command) error {
	switch cmd.Type {
	case wire.CommandUnlock, wire.CommandLock:
		if cmd.Door > a.hw.Doors() {
			return fmt.Errorf("door %d: %w; this unit has %d", cmd.Door, hardware.ErrNoSuchDoor, a.hw.Doors())
		}
	case wire.CommandSetpoint:
		want := "heater"
		if a.hw.Kind() == hardware.KindFridge {
			want = "compressor"
		}
		if cmd.Target != want {
			return fmt.Errorf("target %q: this %s has a %s", cmd.Target, a.hw.Kind(), want)
		}
	}
	return nil
}

// execute performs an accepted command and returns its outcome.
func (a *Agent) execute(ctx context.Context, cmd wire.Command) (wire.Outcome, string) {
	switch cmd.Type {
	case wire.CommandUnlock:
		return a.unlock(ctx, cmd)
	case wire.CommandLock:
		if err := a.hw.Lock(cmd.Door); err != nil {
			return wire.OutcomeFailed, err.Error()
		}
		if st, err := a.hw.Read(); err == nil && st.Doors[cmd.Door-1].Locked {
			return wire.OutcomeLocked, ""
		}
		return wire.OutcomeOK, "door is open; it latches when closed"
	case wire.CommandSetpoint:
		if err := a.state.setSetpoint(cmd.Target == "compressor", *cmd.SetpointC); err != nil {
			return wire.OutcomeFailed, err.Error()
		}
		return wire.OutcomeOK, fmt.Sprintf("%s setpoint %.1f °C", cmd.Target, *cmd.SetpointC)
	case wire.CommandSnapshot:
		done := make(chan struct{})
		select {
		case a.snapshots <- done:
			<-done
			return wire.OutcomeOK, ""
		case <-ctx.Done():
			return wire.OutcomeFailed, "agent stopping"
		}
	}
	return wire.OutcomeInvalid, fmt.Sprintf("unknown command type %q", cmd.Type)
}

// unlock releases the latch and watches the door sensor: the outcome is what the door did, not
// what the lock was told.
//
// A door the sensor reports open is answered already-open at once, without a pulse: whoever
// the unlock was for can already reach the compartment (typically the person let in by an
// earlier unlock still holds the door), so waiting for an opening that cannot come would report
// a healthy lock as jammed. Pulsing anyway would release nothing a person could use, and on a
// solenoid lock it would hold the bolt back for the pulse, so that a door pushed shut meanwhile
// stays closed but unlocked; left engaged, the latch catches the door as it closes.
func (a *Agent) unlock(ctx context.Context, cmd wire.Command) (wire.Outcome, string) {
	if cmd.Expired(time.Now()) { // the last moment at which refusing is still possible
		return wire.OutcomeExpired, "expired before the lock was actuated"
	}
	before, err := a.hw.Read()
	if err != nil {
		return wire.OutcomeFailed, err.Error()
	}
	if before.Doors[cmd.Door-1].Open {
		return wire.OutcomeAlreadyOpen, fmt.Sprintf("door %d was already open; the lock was not actuated", cmd.Door)
	}
	pulse := a.cfg.Unlock.Pulse
	if cmd.PulseMS > 0 {
		pulse = time.Duration(cmd.PulseMS) * time.Millisecond
	}
	window := a.cfg.Unlock.ConfirmWindow
	a.unlockMu.Lock()
	a.remoteUnlock[cmd.Door] = time.Now().Add(window)
	a.unlockMu.Unlock()
	opens := before.Doors[cmd.Door-1].Opens
	start := time.Now()
	if err := a.hw.Unlock(cmd.Door, pulse); err != nil {
		if errors.Is(err, hardware.ErrNoSuchDoor) {
			return wire.OutcomeInvalid, err.Error()
		}
		return wire.OutcomeFailed, err.Error()
	}
	tick := time.NewTicker(confirmPollInterval)
	defer tick.Stop()
	deadline := time.NewTimer(window)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return wire.OutcomeFailed, "agent stopping before the door opened"
		case <-deadline.C:
			return wire.OutcomeJammed, fmt.Sprintf("door %d did not open within %s", cmd.Door, window)
		case <-tick.C:
			// The opening counter, not the current state: a door opened and shut again
			// between two reads was still opened.
			st, err := a.hw.Read()
			if err == nil && st.Doors[cmd.Door-1].Opens > opens {
				return wire.OutcomeOpened, fmt.Sprintf("door %d opened after %s", cmd.Door, time.Since(start).Round(time.Millisecond))
			}
		}
	}
}

// finish records the outcome of a command (so that a redelivery gets the same answer) and
// sends the result.
func (a *Agent) finish(cmd wire.Command, rec commandRecord) {
	if err := a.state.recordCommand(time.Now(), cmd.ID, rec); err != nil {
		a.log.Error("record command result", "command", cmd.ID, "error", err)
	}
	a.log.Info("command done", "command", cmd.ID, "type", cmd.Type, "door", cmd.Door, "outcome", rec.Outcome, "detail", rec.Detail)
	a.result(cmd.ID, rec.Outcome, rec.Detail)
}

func (a *Agent) result(id string, outcome wire.Outcome, detail string) {
	if len(detail) > maxDetailBytes {
		// Cut on a rune boundary: an invalid UTF-8 detail would make the whole result unsendable.
		detail = strings.ToValidUTF8(detail[:maxDetailBytes], "")
	}
	err := a.emit(LaneEvents, wire.ChannelResult, func(seq uint64, ts int64) wire.Message {
		return wire.Result{V: wire.Version, ID: id, Seq: seq, TS: ts, Outcome: outcome, Detail: detail}
	})
	if err != nil {
		a.log.Error("command result", "command", id, "error", err)
	}
}
