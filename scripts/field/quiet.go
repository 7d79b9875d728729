package main

import (
	"context"

	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// quietFridgeShare is simulate's default mix.
const quietFridgeShare = 0.3

// quiet runs the quiet part: the fleet with people and no faults for -duration against the
// hub's built-in rules, then every alert it raised.
func (t *trial) quiet(ctx context.Context) (*quietResult, error) {
	o := t.o
	res := &quietResult{Units: o.units, Sites: o.sites, Duration: o.duration.String(), ByRule: map[string]int{},
		Rules: "the hub's built-in rules (configs/alerts.yaml)"}
	b, err := t.startBench(ctx, "quiet", "", simArgs{units: o.units, sites: o.sites, fridgeShare: quietFridgeShare, people: true,
		pickupRate: o.pickupRate, keypadShare: o.keypadShare})
	if err != nil {
		return res, err
	}
	defer b.stop()
	kinds := map[string]string{}
	for _, u := range b.units {
		kinds[u.ID] = u.Kind
		if u.Kind == string(fleet.KindFridge) {
			res.Fridges++
		} else {
			res.LockerBanks++
		}
	}
	online := time.Now()
	t.logf("quiet: running for %s; a line a minute", o.duration)
	end := online.Add(o.duration)
	for minute := 1; ; minute++ {
		next := online.Add(time.Duration(minute) * time.Minute)
		last := !next.Before(end)
		if last {
			next = end
		}
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			return res, err
		}
		p, perr := countPickups(ctx, b)
		as, aerr := b.api.alerts(ctx, "")
		if perr != nil || aerr != nil {
			t.logf("quiet: minute %d: counting: %v %v", minute, perr, aerr)
			continue
		}
		res.Pickups = p
		line := progressLine{Minute: minute, Remote: p.RemoteUnlocks, Keypad: p.KeypadOpenings, Alerts: len(as)}
		res.Progress = append(res.Progress, line)
		t.logf("quiet: %d min: %d remote unlocks, %d keypad pickups, %d alerts", minute, line.Remote, line.Keypad, line.Alerts)
		if last {
			res.Alerts = quietAlerts(as, kinds, online)
			break
		}
	}
	for _, a := range res.Alerts {
		res.ByRule[a.Rule]++
	}
	res.Pass = len(res.Alerts) == 0
	return res, nil
}

// quietAlerts turns the hub's alerts into the report's, oldest first.
func quietAlerts(as []fleet.Alert, kinds map[string]string, online time.Time) []quietAlert {
	out := make([]quietAlert, 0, len(as))
	for i := len(as) - 1; i >= 0; i-- { // the API lists newest first
		a := as[i]
		out = append(out, quietAlert{Rule: a.Rule, Severity: string(a.Severity), Unit: a.DeviceID, Kind: kinds[a.DeviceID], Door: a.Door,
			FiredAt: a.FiredAt, AfterS: round1(a.FiredAt.Sub(online).Seconds()), State: string(a.State), Summary: a.Summary})
	}
	return out
}

// countPickups counts the remote unlocks the hub received (its commands) and the door openings
// the units reported, by cause (InfluxDB).
func countPickups(ctx context.Context, b *bench) (pickups, error) {
	p := pickups{RemoteOutcomes: map[string]int{}}
	cmds, err := b.api.commands(ctx)
	if err != nil {
		return p, err
	}
	for _, c := range cmds {
		if c.Type != "unlock" {
			continue
		}
		p.RemoteUnlocks++
		key := string(c.Status)
		if c.Outcome != "" {
			key += "/" + string(c.Outcome)
		}
		p.RemoteOutcomes[key]++
	}
	if len(cmds) == 1000 {
		p.CommandsCounted = " (the API lists the newest 1,000 commands: more were sent)"
	}
	opens, err := openingsByCause(b.db)
	if err != nil {
		return p, err
	}
	for cause, n := range opens {
		switch cause {
		case "remote":
			p.RemoteOpenings += n
		case "local":
			p.KeypadOpenings += n
		default:
			p.OtherOpenings += n
		}
	}
	return p, nil
}

// openingsByCause counts the door events that opened a door, by their cause tag.
func openingsByCause(db *testbed.Influx) (map[string]int64, error) {
	res, err := db.Query(`SELECT COUNT("open") FROM "door_event" WHERE "open" = true GROUP BY "cause"`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range res {
		if len(s.Values) > 0 && len(s.Values[0]) > 1 {
			n, _ := s.Values[0][1].(float64)
			out[s.Tags["cause"]] += int64(n)
		}
	}
	return out, nil
}
