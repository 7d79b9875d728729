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

// Points carry the device id, not its registration: a query for a unit registered again under
// an id starts at its registration (Since), so the unit that held the id before never shows,
// in the history or in the cold-chain report.
func TestQueriesStartAtTheRegistration(t *testing.T) {
	s := testinflux.Require(t)
	ctx := context.Background()
	// x-1 was a fridge at oak until 03-01 10:00, then removed; the id was registered again at
	// elm at 10:30. fr-2 at oak is not concerned.
	since := at("03-01 10:30")
	var lines []string
	for _, r := range []struct {
		device, site string
		t            time.Time
		celsius      float64
	}{
		{"x-1", "oak", at("03-01 09:00"), 9}, // the oak unit's, above 5 °C
		{"x-1", "oak", at("03-01 09:55"), 9},
		{"x-1", "elm", at("03-01 10:30"), 3}, // the elm unit's, from its registration on
		{"x-1", "elm", at("03-01 10:35"), 3},
		{"fr-2", "oak", at("03-01 09:00"), 9},
	} {
		lines = append(lines, compartmentLine(r.device, r.site, 1, r.t, r.celsius),
			fmt.Sprintf("temperature,device=%s,kind=fridge,sensor=ambient,site=%s celsius=%v %d", r.device, r.site, r.celsius, r.t.UnixNano()))
	}
	s.Write(t, lines...)
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()

	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"across the registration", at("03-01 08:00"), at("03-01 12:00"), "[10:30 3 10:35 3]"},
		{"before it", at("03-01 08:00"), at("03-01 10:00"), "[]"},
		{"ending at it", at("03-01 08:00"), since, "[]"},
	} {
		points, err := c.History(ctx, fleet.HistoryQuery{DeviceID: "x-1", Field: "ambient_c", From: tc.from, To: tc.to,
			Every: time.Minute, Since: since})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := []string{}
		for _, p := range points {
			// aggregateWindow stamps a window with its end.
			got = append(got, p.T.Add(-time.Minute).Format("15:04"), fmt.Sprint(p.V))
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("history %s: %v, want %s", tc.name, got, tc.want)
		}
	}

	rows, err := c.ColdChain(ctx, fleet.ColdChainQuery{
		Compartments: []fleet.Compartment{
			{DeviceID: "x-1", Site: "elm", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5, Since: since},
			{DeviceID: "fr-2", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5},
		},
		From: at("03-01 00:00"), To: at("03-02 00:00"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s above=%v n=%d", r.DeviceID, r.MinutesAbove, r.Samples))
	}
	// By site: x-1 at elm, only its two readings at 3 °C; fr-2 at oak, its reading at 9 °C held 5
	// minutes.
	if want := "[x-1 above=0 n=2 fr-2 above=5 n=1]"; fmt.Sprint(got) != want {
		t.Errorf("cold chain: %v, want %s", got, want)
	}
}
