package main

import (
	"context"
	"net/url"

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
		deliveryRate: o.deliveryRate})
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
		line := progressLine{Minute: minute, Delivered: p.Delivered, PickedUp: p.PickedUp, Alerts: len(as)}
		res.Progress = append(res.Progress, line)
		t.logf("quiet: %d min: %d parcels delivered, %d picked up, %d alerts", minute, line.Delivered, line.PickedUp, line.Alerts)
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

// countPickups counts the parcels the simulated carriers delivered and what became of them (the
// hub's API), and the door openings the units reported, by cause (InfluxDB).
func countPickups(ctx context.Context, b *bench) (pickups, error) {
	var p pickups
	ps, _, err := b.api.Parcels(ctx, url.Values{"limit": {"1000"}})
	if err != nil {
		return p, err
	}
	for _, parcel := range ps {
		p.Delivered++
		if parcel.Status == fleet.ParcelPickedUp {
			p.PickedUp++
		}
	}
	if len(ps) == 1000 {
		p.Counted = " (the API lists the newest 1,000 parcels: more were delivered)"
	}
	opens, err := openingsByCause(b.db)
	if err != nil {
		return p, err
	}
	for cause, n := range opens {
		if cause == "code" {
			p.CodeOpenings += n
		} else {
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
