package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// The load must be what the hub accepts and stores in full: a valid 16-door snapshot with the
// sensors pointsPerMessage counts.
func TestSnapshotIsAValidLockerBankSnapshot(t *testing.T) {
	b, err := snapshot(7, tsOf(1_767_225_600_000, 7))
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.DecodeTelemetry(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 7 || m.TS != 1_767_225_600_006 || len(m.Doors) != testbed.DoorsPerUnit || m.AmbientC == nil || m.EnclosureC == nil || m.Heater == nil {
		t.Errorf("snapshot = %+v", m)
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	if got.Samples != 1000 || got.P50Ms != 501 || got.P99Ms != 991 || got.P999Ms != 1000 || got.MaxMs != 1000 {
		t.Errorf("summarize = %+v", got)
	}
	if got := summarize(nil); got != (latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestTargetsCompareTheHubWithMosquittoOnTheSameLoad(t *testing.T) {
	got := (&report{Scenarios: []*scenarioResult{
		{Name: "ingest", Broker: "lockerhub", Units: 2, MessagesPerUnit: 5, Sent: 10, Acked: 10, StoredMessages: 10, AcceptMsgPerSec: 45000, StoredMsgPerSec: 41000},
		{Name: "ceiling-ingest", Broker: "mosquitto", AcceptMsgPerSec: 60000},
	}}).targets()
	if len(got) != 2 || !got[0].Met || !got[1].Met || got[1].Measured != "0.75 (45000 vs 60000 msg/s)" {
		t.Errorf("targets = %+v", got)
	}
}

// The unlock target is judged on the largest run, and only a run of the target's size can meet
// it; a refused unlock fails it whatever the latencies.
func TestTargetsOfCommandsConnectionsAndAgent(t *testing.T) {
	fast := latency{Samples: 100, P50Ms: 8, P99Ms: 15, P999Ms: 19}
	for _, tc := range []struct {
		name string
		rep  report
		want []bool
	}{
		{"met", report{
			Commands:    []*commandsResult{{Units: 10000, Sent: 100, Opened: 100, RoundTrip: fast}, {Units: 1000, Sent: 100, Opened: 100, RoundTrip: latency{P99Ms: 90}}},
			Connections: &connectionsResult{Units: 10000, Connected: 10000, AllOnlineSeconds: 12, After: hubMemory{RSS: 300}, PerUnit: hubMemory{RSS: 20}},
			Agent:       &agentResult{Phases: []agentPhase{{Phase: "idle", PeakRSSMB: 10}, {Phase: "publishing", PeakRSSMB: 14}}},
		}, []bool{true, true, false, true, true}},
		{"a fleet of 50,000", report{
			Connections: &connectionsResult{Units: 50000, Connected: 50000, AllOnlineSeconds: 45, After: hubMemory{RSS: 1300}, PerUnit: hubMemory{RSS: 20}},
		}, []bool{false, true, true}},
		{"a fleet of 50,000, too slow", report{
			Connections: &connectionsResult{Units: 50000, Connected: 50000, AllOnlineSeconds: 61, After: hubMemory{RSS: 1300}, PerUnit: hubMemory{RSS: 20}},
		}, []bool{false, false, true}},
		{"too small a run", report{
			Commands:    []*commandsResult{{Units: 1000, Sent: 100, Opened: 100, RoundTrip: fast}},
			Connections: &connectionsResult{Units: 1000, Connected: 1000, AllOnlineSeconds: 2, After: hubMemory{RSS: 300}, PerUnit: hubMemory{RSS: 20}},
		}, []bool{false, false, false, true}},
		{"missed", report{
			Commands:    []*commandsResult{{Units: 10000, Sent: 100, Opened: 99, RoundTrip: fast}},
			Connections: &connectionsResult{Units: 10000, Connected: 9999, AllOnlineSeconds: 12, After: hubMemory{RSS: 300}, PerUnit: hubMemory{RSS: 30}},
			Agent:       &agentResult{Phases: []agentPhase{{Phase: "idle", PeakRSSMB: 10}, {Phase: "publishing", PeakRSSMB: 21}}},
		}, []bool{false, false, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.rep.targets()
			if len(got) != len(tc.want) {
				t.Fatalf("targets = %+v", got)
			}
			for i, w := range tc.want {
				if got[i].Met != w {
					t.Errorf("%s: met = %v, want %v (%s)", got[i].Target, got[i].Met, w, got[i].Measured)
				}
			}
		})
	}
}

// A paced load spreads the units over each interval and keeps its schedule.
func TestSendAt(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		i, units, n int
		want        time.Duration
	}{{0, 4, 0, 0}, {1, 4, 0, 25 * time.Millisecond}, {3, 4, 2, 275 * time.Millisecond}} {
		if got := sendAt(start, 100*time.Millisecond, tc.i, tc.units, tc.n).Sub(start); got != tc.want {
			t.Errorf("sendAt(unit %d of %d, message %d) = +%s, want +%s", tc.i, tc.units, tc.n, got, tc.want)
		}
	}
}

// Only unlocks that opened count towards the latencies; everything else is counted by answer.
func TestTally(t *testing.T) {
	var r commandsResult
	r.tally([]unlockAnswer{
		{took: 10 * time.Millisecond, status: 200, outcome: wire.OutcomeOpened, latencyMs: 9},
		{took: 20 * time.Millisecond, status: 200, outcome: wire.OutcomeOpened, latencyMs: 18},
		{took: 5 * time.Second, status: 504},
		{took: time.Millisecond, status: 429},
		{took: time.Second, status: 200, outcome: wire.OutcomeJammed},
		{took: time.Second, sentAt: 3 * time.Second},
	})
	if r.Sent != 6 || r.Opened != 2 || r.RoundTrip.Samples != 2 || r.RoundTrip.MaxMs != 20 || r.HubLatency.P50Ms != 18 ||
		r.Statuses["504"] != 1 || r.Statuses["429"] != 1 || r.Statuses["outcome:jammed"] != 1 || r.Statuses["error"] != 1 || len(r.Errors) != 1 ||
		len(r.Slowest) != 6 || r.Slowest[0] != (slowUnlock{Ms: 5000, Status: 504}) || r.Slowest[5].Ms != 1 {
		t.Errorf("tally = %+v", r)
	}
}

func TestParseSources(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2-127.0.0.9":   "[127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8 127.0.0.9]",
		"127.0.0.1":             "[127.0.0.1]",
		"127.0.0.2, 127.0.0.5":  "[127.0.0.2 127.0.0.5]",
		"127.0.0.255-127.0.1.0": "[127.0.0.255 127.0.1.0]",
	} {
		if got, err := parseSources(in); err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseSources(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.9-127.0.0.2", "localhost", "127.0.0.1-127.0.2.0", "::1-::2"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q) succeeded", bad)
		}
	}
}

func TestParseSizes(t *testing.T) {
	if got, err := parseSizes("1000, 10000"); err != nil || len(got) != 2 || got[1] != 10000 {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1000,x"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) succeeded", bad)
		}
	}
}
