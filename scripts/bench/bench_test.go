package main

import (
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
	if got.Samples != 1000 || got.P50Ms != 501 || got.P99Ms != 991 || got.MaxMs != 1000 {
		t.Errorf("summarize = %+v", got)
	}
	if got := summarize(nil); got != (latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestTargetsCompareTheHubWithMosquittoOnTheSameLoad(t *testing.T) {
	got := targets([]*scenarioResult{
		{Name: "ingest", Broker: "lockerhub", Units: 2, MessagesPerUnit: 5, Sent: 10, Acked: 10, StoredMessages: 10, AcceptMsgPerSec: 45000, StoredMsgPerSec: 41000},
		{Name: "ceiling-ingest", Broker: "mosquitto", AcceptMsgPerSec: 60000},
	})
	if len(got) != 2 || !got[0].Met || !got[1].Met || got[1].Measured != "0.75 (45000 vs 60000 msg/s)" {
		t.Errorf("targets = %+v", got)
	}
}
