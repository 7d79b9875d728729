package influx_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testinflux"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// writeBatched writes lines in requests of 10,000, as a real spool shipper would batch them.
func writeBatched(b *testing.B, s *testinflux.Server, lines []string) {
	for len(lines) > 0 {
		n := min(len(lines), 10_000)
		s.Write(b, lines[:n]...)
		lines = lines[n:]
	}
}

// A week of one fridge at a 10 s interval, as the hub writes it with a door point in every
// snapshot (the shape both query paths read alike): the history of the dashboard's charts.
func BenchmarkHistory(b *testing.B) {
	s := testinflux.Require(b)
	start := at("03-01 00:00")
	var lines []string
	for tm := start; tm.Before(start.Add(7 * 24 * time.Hour)); tm = tm.Add(10 * time.Second) {
		open := tm.Minute()%20 == 0 // open a minute in every twenty
		lines = append(lines, compartmentLine("fr-1", "oak", 1, tm, 3+float64(tm.Second())/100),
			fmt.Sprintf("door,device=fr-1,door=1,kind=fridge,site=oak open=%t,locked=%t %d", open, !open, tm.UnixNano()))
	}
	writeBatched(b, s, lines)
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 30 * time.Second})
	defer c.Close()
	for _, bc := range []struct {
		name  string
		field string
		span  time.Duration
		every time.Duration
		want  int
	}{
		{"compartment_c/7d-every-1h", "compartment_c", 7 * 24 * time.Hour, time.Hour, 168},
		{"door_open/1d-every-5m", "door_open", 24 * time.Hour, 5 * time.Minute, 288},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := fleet.HistoryQuery{DeviceID: "fr-1", Field: bc.field, Door: 1, From: start, To: start.Add(bc.span), Every: bc.every}
			for b.Loop() {
				points, err := c.History(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if len(points) != bc.want {
					b.Fatalf("%d points, want %d", len(points), bc.want)
				}
			}
		})
	}
}

// A week's cold-chain report for 20 fridges of 2 compartments each, read every 60 s.
func BenchmarkColdChain(b *testing.B) {
	s := testinflux.Require(b)
	start := at("03-01 00:00")
	var lines []string
	var comps []fleet.Compartment
	for f := 1; f <= 20; f++ {
		id := fmt.Sprintf("fr-%d", f)
		for door := 1; door <= 2; door++ {
			comps = append(comps, fleet.Compartment{DeviceID: id, Site: "oak", Door: door, Class: fleet.ClassChilled, ThresholdC: 5,
				StuckAfter: 30 * time.Minute})
			for tm := start.Add(-10 * time.Minute); tm.Before(start.Add(7 * 24 * time.Hour)); tm = tm.Add(time.Minute) {
				lines = append(lines, compartmentLine(id, "oak", door, tm, 3+float64((tm.Minute()+f)%7)/2))
			}
		}
	}
	writeBatched(b, s, lines)
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 60 * time.Second})
	defer c.Close()
	q := fleet.ColdChainQuery{Compartments: comps, From: start, To: start.Add(7 * 24 * time.Hour)}
	for b.Loop() {
		rows, err := c.ColdChain(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) != 40*7 || rows[0].Samples != 1440 {
			b.Fatalf("%d rows (first %+v), want 280 of 1440 samples", len(rows), rows[0])
		}
	}
}
