package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// The fleet overview's share of the event stream. One producer, for every client at once,
// keeps the device view each unit was last sent with and, once per streamRefresh, works out what
// changed since: the units the hub's events touched (telemetry, door events, alerts), the units
// whose health moved without an event (a heartbeat missed: found by a sweep every
// healthSweep), the units
// registered and removed, and the sites' health counts. Each client then gets, of that, what
// lies in its token's scope: the cost of a change is paid once, and an open dashboard costs a
// filter over the changes and a write.
//
// A client that connects gets a snapshot for the overview instead of the whole fleet: the
// health counts, the units that need attention and the first page of units (overviewSnapshot).
//
// Nobody watching, nothing is kept: the producer rebuilds its views when the next client comes.

// overviewSnapshot is what a client of the whole fleet gets at connect, besides the health
// counts: the first snapshotAttention units by attention among those not ok, and the first
// snapshotPage units by id. The dashboard asks for further pages with GET /api/v1/devices.
const (
	snapshotAttention = 100
	snapshotPage      = 50
)

// overviewBatch is one interval's changes, shared read-only by every client.
type overviewBatch struct {
	sites   []fleet.SiteHealth // every site's counts; nil when unchanged since the last batch
	changed []unitFrame        // "device" events of the units whose view changed
	removed []unitFrame        // "removed" events of the units no longer registered
}

// unitFrame is a unit's event as it is written to the stream, encoded once.
type unitFrame struct {
	site  string
	frame []byte
}

// overviewUnit is a unit as the producer last sent it.
type overviewUnit struct {
	dev    *fleet.Device
	health fleet.Health
	view   []byte // the JSON of its view
}

// marks are what the hub's events changed since the producer last looked.
type marks struct {
	units    map[string]struct{}
	alerts   bool // open alerts changed: the sites' counts of them did
	registry bool // devices registered, removed or changed
}

// healthSweep is how often the producer looks at every unit's health for a change no event
// told: a connection lost or ended, an alert fired or resolved are events and reach the
// clients within streamRefresh; only a unit whose pings stop without a disconnect turns
// offline silently, at the end of a heartbeat timeout of minutes. Looking at 10,000 units
// every second was most of what an open dashboard cost the hub.
const healthSweep = 10 * time.Second

// producer computes the overview's changes for every client of the stream.
type producer struct {
	a     *api
	s     *Stream
	units map[string]*overviewUnit // nil while nobody watches the fleet
	sites []fleet.SiteHealth
	swept time.Time // the last look at every unit's health
}

// run produces a batch every streamRefresh while some client watches the whole fleet, until
// ctx ends.
func (p *producer) run(ctx context.Context) {
	tick := time.NewTicker(streamRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p.s.watching.Load() == 0 {
			p.units, p.sites, p.swept = nil, nil, time.Time{}
			continue
		}
		if err := p.produce(ctx); err != nil {
			p.a.log.Warn("fleet overview: changes not computed", "error", err)
		}
	}
}

// produce works out one interval's changes and hands them to the clients.
func (p *producer) produce(ctx context.Context) error {
	m := p.s.takeMarks()
	var b overviewBatch
	if p.units == nil || m.registry {
		removed, err := p.reload(ctx, m.units)
		if err != nil {
			return err
		}
		b.removed = removed
	}
	moved := false
	if now := time.Now(); now.Sub(p.swept) >= healthSweep {
		p.swept = now
		for id, u := range p.units {
			if p.a.health(u.dev) != u.health {
				m.units[id] = struct{}{}
			}
		}
	}
	for id := range m.units {
		u := p.units[id]
		if u == nil {
			continue // not registered (any more)
		}
		v := p.a.view(u.dev)
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode device %s: %w", id, err)
		}
		if v.Health != u.health {
			u.health, moved = v.Health, true // the sites' counts moved
		}
		if bytes.Equal(data, u.view) {
			continue
		}
		u.view = data
		b.changed = append(b.changed, unitFrame{site: u.dev.Site, frame: fmt.Appendf(nil, "event: device\ndata: %s\n\n", data)})
	}
	if p.a.svc.Alerts != nil && (p.sites == nil || moved || m.alerts || m.registry) {
		sites := p.a.svc.Alerts.Summary(func(string) bool { return true })
		if !slices.Equal(sites, p.sites) {
			p.sites, b.sites = sites, sites
		}
	}
	p.s.broadcast(&b)
	return nil
}

// reload reads the registry again and marks the units registered since and those whose record
// changed (a new registration of the id included); it returns the removed events of the units
// no longer registered. Built from nothing, it marks nothing: the clients have their snapshots,
// and a unit's view is encoded when it first changes.
func (p *producer) reload(ctx context.Context, mark map[string]struct{}) ([]unitFrame, error) {
	devices, err := p.a.svc.Devices.FindDevices(ctx, fleet.DeviceFilter{})
	if err != nil {
		return nil, err
	}
	units := make(map[string]*overviewUnit, len(devices))
	for _, d := range devices {
		u := p.units[d.ID]
		switch {
		case u == nil:
			u = &overviewUnit{dev: d, health: p.a.health(d)}
			if p.units != nil {
				mark[d.ID] = struct{}{}
			}
		case !reflect.DeepEqual(*u.dev, *d):
			u.dev = d
			mark[d.ID] = struct{}{}
		}
		units[d.ID] = u
	}
	var removed []unitFrame
	for id, u := range p.units {
		if units[id] == nil {
			removed = append(removed, removedFrame(u.dev))
		}
	}
	p.units = units
	return removed, nil
}

// removedFrame is the event telling a client that d is gone from its overview.
func removedFrame(d *fleet.Device) unitFrame {
	data, _ := json.Marshal(map[string]string{"id": d.ID, "site": d.Site})
	return unitFrame{site: d.Site, frame: fmt.Appendf(nil, "event: removed\ndata: %s\n\n", data)}
}
