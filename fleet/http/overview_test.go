package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
)

// someOnline is a broker where the units not listed as offline are connected and were seen
// just now, and whose live state a test changes.
type someOnline struct {
	offline map[string]bool
	mu      sync.Mutex
	gaps    map[string]uint64 // live state's gaps by unit: a change a test makes
}

func (s *someOnline) Presence(id string) (fleet.Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offline[id] {
		return fleet.Presence{}, false
	}
	now := time.Now()
	return fleet.Presence{DeviceID: id, Online: true, ConnectedSince: now.Add(-time.Hour), LastSeen: now}, true
}

func (s *someOnline) LiveState(d *fleet.Device) (fleet.LiveState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fleet.LiveState{Gaps: s.gaps[d.ID]}, true
}

func (s *someOnline) setOffline(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offline[id] = true
}

func (s *someOnline) setGaps(id string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaps[id] = n
}

// fixedHealth is the health rules reduced to what the overview reads, each unit's health and
// the sites' counts (as the engine counts them, over every unit), so that a benchmark measures
// the stream and not the rules.
type fixedHealth struct {
	lhhttp.AlertKeeper // the alert endpoints are not called
	health             map[string]fleet.Health
	site               map[string]string
}

func (f *fixedHealth) Health(d *fleet.Device) (fleet.Health, bool) { return f.health[d.ID], true }

func (f *fixedHealth) Summary(inScope func(string) bool) []fleet.SiteHealth {
	by := map[string]*fleet.SiteHealth{}
	for id, h := range f.health {
		s := f.site[id]
		if !inScope(s) {
			continue
		}
		if by[s] == nil {
			by[s] = &fleet.SiteHealth{Site: s}
		}
		by[s].Add(h, 0)
	}
	out := make([]fleet.SiteHealth, 0, len(by))
	for i := range len(by) {
		out = append(out, *by[fmt.Sprint("site-", i+1)])
	}
	return out
}

// The hub's CPU for the fleet overview's streams at 10,000 units (20 sites, 9,000 of them
// offline) while 500 units a second send telemetry, with 0, 1 and 5 dashboards open: each
// iteration is one second of the stream, and cpu-%-of-core is the process's CPU time over that
// second (the dashboards here only read and discard what they are sent). Run it with
// -benchtime=10x or more.
func BenchmarkOverviewStream(b *testing.B) {
	const units, sites, changing = 10000, 20, 500
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(b)
	broker := &someOnline{offline: map[string]bool{}, gaps: map[string]uint64{}}
	health := &fixedHealth{health: map[string]fleet.Health{}, site: map[string]string{}}
	var ds []*fleet.Device
	for i := range units {
		d := &fleet.Device{ID: fmt.Sprintf("bank-%05d", i), Kind: fleet.KindLockerBank, Site: fmt.Sprint("site-", i%sites+1), Doors: 16}
		ds = append(ds, d)
		health.site[d.ID], health.health[d.ID] = d.Site, fleet.HealthOK
		if i >= changing*2 {
			broker.offline[d.ID], health.health[d.ID] = true, fleet.HealthOffline
		}
	}
	if _, err := reg.devices.CreateDevices(ctx, ds); err != nil {
		b.Fatal(err)
	}
	stream := lhhttp.NewStream(0)
	addr := reg.serve(b, lhhttp.Services{Presence: broker, Live: broker, History: nobodyOnline{}, Alerts: health, Stream: stream})
	for _, n := range []int{0, 1, 5} {
		b.Run(fmt.Sprint("dashboards=", n), func(b *testing.B) {
			for i := range n {
				readAll(b, addr, reg.token(b, fmt.Sprint("screen ", i), fleet.RoleViewer))
			}
			time.Sleep(3 * time.Second) // past the streams' first state
			seq := uint64(0)
			start := cpuTime()
			b.ResetTimer()
			for range b.N {
				seq++
				// Half the units that send this second, as 1,000 units every 2 s do.
				for j := range changing {
					d := ds[int(seq%2)*changing+j]
					broker.setGaps(d.ID, seq)
					stream.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d})
				}
				time.Sleep(time.Second)
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.Elapsed())*100, "cpu-%-of-core")
		})
	}
}

// readAll opens the fleet stream and reads it until the benchmark ends.
func readAll(b *testing.B, addr, token string) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("stream: %v %v", resp, err)
	}
	go io.Copy(io.Discard, resp.Body)
	b.Cleanup(func() { cancel(); resp.Body.Close() })
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
