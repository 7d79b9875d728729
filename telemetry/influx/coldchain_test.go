package influx_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testinflux"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// at parses "01-02 15:04" as a time in 2026, UTC.
func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", "2026-"+s)
	if err != nil {
		panic(err)
	}
	return t
}

// compartmentLine is a compartment reading in line protocol, as the hub writes it (docs/telemetry.md).
func compartmentLine(device, site string, door int, t time.Time, celsius float64) string {
	return fmt.Sprintf("temperature,device=%s,door=%d,kind=fridge,sensor=compartment,site=%s celsius=%v %d",
		device, door, site, celsius, t.UnixNano())
}

// every5m writes a reading every 5 minutes in [from, to], with value unless overridden, and
// none at the times in skip.
func every5m(device, site string, door int, from, to time.Time, value float64, override map[string]float64, skip func(time.Time) bool) []string {
	var lines []string
	for t := from; !t.After(to); t = t.Add(5 * time.Minute) {
		if skip != nil && skip(t) {
			continue
		}
		v, ok := override[t.Format("01-02 15:04")]
		if !ok {
			v = value
		}
		lines = append(lines, compartmentLine(device, site, door, t, v))
	}
	return lines
}

// Minutes above and peaks for a chilled and a freezer compartment over two days, read from a
// real InfluxDB; see the comments at each series for the expected numbers.
func TestColdChain(t *testing.T) {
	s := testinflux.Require(t)

	// fr-1 door 1, chilled (5 °C), readings every 5 minutes at 4 °C, except:
	// - 02-28 23:58 at 9 °C, before the range: it holds until 00:03 (the next reading, 00:05,
	//   is more than 5 minutes later; 00:00 is missing): 3 minutes above, 2 without data.
	// - 03-01 10:00-10:10 at 6.5 and 7.25, then 5 (at the threshold, not above): 10 minutes.
	// - 03-01 23:50 to 03-02 00:10 above: 10 minutes on each day; 8.5 is the first day's peak.
	// - 03-02 12:00 at 6 holds 5 minutes, then nothing until 13:00: 55 minutes without data.
	// From 03-02 the unit reports with the tag site=elm (it was moved; the registry says oak):
	// the two series are one compartment.
	frMoved := at("03-02 00:00")
	fr := every5m("fr-1", "oak", 1, at("02-28 23:55"), frMoved.Add(-5*time.Minute), 4, map[string]float64{
		"03-01 10:00": 6.5, "03-01 10:05": 7.25, "03-01 10:10": 5, "03-01 23:50": 6, "03-01 23:55": 8.5,
	}, func(t time.Time) bool { return t.Equal(at("03-01 00:00")) })
	fr = append(fr, every5m("fr-1", "elm", 1, frMoved, at("03-02 23:55"), 4, map[string]float64{
		"03-02 00:00": 7, "03-02 00:05": 6, "03-02 12:00": 6,
	}, func(t time.Time) bool { return t.After(at("03-02 12:00")) && t.Before(at("03-02 13:00")) })...)
	fr = append(fr, compartmentLine("fr-1", "oak", 1, at("02-28 23:58"), 9))

	// fz-1 door 2, freezer (-12 °C), at -18 °C every 5 minutes on 03-01 only, with a defrost
	// excursion 06:00-06:10 (-11, -9.5, then -12: at the threshold). 03-02 has no data.
	fz := every5m("fz-1", "oak", 2, at("02-28 23:55"), at("03-01 23:55"), -18, map[string]float64{
		"03-01 06:00": -11, "03-01 06:05": -9.5, "03-01 06:10": -12,
	}, nil)

	noise := []string{ // none of these are the report's compartments
		fmt.Sprintf("temperature,device=fr-1,kind=fridge,sensor=ambient,site=oak celsius=30 %d", at("03-01 12:02").UnixNano()),
		compartmentLine("fr-1", "oak", 3, at("03-01 12:02"), 50),
		compartmentLine("fr-9", "oak", 1, at("03-01 12:02"), 40),
	}
	s.Write(t, append(append(fr, fz...), noise...)...)

	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()
	rows, err := c.ColdChain(context.Background(), fleet.ColdChainQuery{
		Compartments: []fleet.Compartment{ // out of order: the report sorts by site, device, door
			{DeviceID: "aa-1", Site: "pine", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5},
			{DeviceID: "fz-1", Site: "oak", Door: 2, Class: fleet.ClassFreezer, ThresholdC: -12},
			{DeviceID: "fr-1", Site: "oak", Door: 2, Class: fleet.ClassChilled, ThresholdC: 5},
			{DeviceID: "fr-1", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5},
		},
		From: at("03-01 00:00"), To: at("03-03 00:00"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		peak := "-"
		if r.PeakC != nil {
			peak = fmt.Sprint(*r.PeakC)
		}
		fmt.Fprintf(&b, "%s %s/%d %s %s>%v above=%v nodata=%v peak=%s n=%d\n", r.Site, r.DeviceID, r.Door, r.Date,
			r.Class, r.ThresholdC, r.MinutesAbove, r.MinutesNoData, peak, r.Samples)
	}
	want := `oak fr-1/1 2026-03-01 chilled>5 above=23 nodata=2 peak=8.5 n=287
oak fr-1/1 2026-03-02 chilled>5 above=15 nodata=55 peak=7 n=277
oak fr-1/2 2026-03-01 chilled>5 above=0 nodata=1440 peak=- n=0
oak fr-1/2 2026-03-02 chilled>5 above=0 nodata=1440 peak=- n=0
oak fz-1/2 2026-03-01 freezer>-12 above=10 nodata=0 peak=-9.5 n=288
oak fz-1/2 2026-03-02 freezer>-12 above=0 nodata=1440 peak=- n=0
pine aa-1/1 2026-03-01 chilled>5 above=0 nodata=1440 peak=- n=0
pine aa-1/1 2026-03-02 chilled>5 above=0 nodata=1440 peak=- n=0
`
	if got := b.String(); got != want {
		t.Errorf("report:\n%swant:\n%s", got, want)
	}
}

func TestColdChainErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // nothing listens there now
	c := influx.New(influx.Config{URL: "http://" + ln.Addr().String(), Bucket: "lockerhub/autogen", BatchSize: 1000, Timeout: 5 * time.Second})
	defer c.Close()
	day := at("03-01 00:00")
	fridge := []fleet.Compartment{{DeviceID: "fr-1", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5}}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		code     string
	}{
		{"from after to", day.Add(time.Hour), day, fleet.EINVALID},
		{"empty range", day, day, fleet.EINVALID},
		{"over 93 days", day, day.AddDate(0, 0, 94), fleet.EINVALID},
		{"InfluxDB not answering", day, day.AddDate(0, 0, 93), fleet.EUNAVAILABLE},
	} {
		_, err := c.ColdChain(context.Background(), fleet.ColdChainQuery{Compartments: fridge, From: tc.from, To: tc.to})
		if fleet.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want code %s", tc.name, err, tc.code)
		}
	}
}

// A stuck sensor repeats one value exactly while the compartment warms: the report counts the
// time of such a run (as long as the sensor-stuck rule waits, or longer) as untrusted, neither
// above nor cold, and leaves its readings out of the peak; a shorter repeat is trusted.
func TestColdChainStuckSensor(t *testing.T) {
	s := testinflux.Require(t)
	// st-1 door 1 every 5 minutes; a real sensor's noise alternates 3.0 and 3.1, except:
	// - 02-28 23:45 to 03-01 00:10 at 2.5 (25 minutes, begun before the range): 15 minutes of
	//   03-01 untrusted, up to the next reading at 00:15.
	// - 10:00 to 10:45 at 2.9 (45 minutes): 50 minutes untrusted.
	// - 11:00 to 11:15 at 3.2 (15 minutes): trusted, the peak.
	// - 12:00 to 12:30 at 6 (30 minutes): 35 minutes untrusted, not above, not the peak.
	var lines []string
	for tm := at("02-28 23:30"); tm.Before(at("03-02 00:00")); tm = tm.Add(5 * time.Minute) {
		v := 3.0 + 0.1*float64(tm.Minute()/5%2)
		switch {
		case !tm.Before(at("02-28 23:45")) && !tm.After(at("03-01 00:10")):
			v = 2.5
		case !tm.Before(at("03-01 10:00")) && !tm.After(at("03-01 10:45")):
			v = 2.9
		case !tm.Before(at("03-01 11:00")) && !tm.After(at("03-01 11:15")):
			v = 3.2
		case !tm.Before(at("03-01 12:00")) && !tm.After(at("03-01 12:30")):
			v = 6
		}
		lines = append(lines, compartmentLine("st-1", "oak", 1, tm, v))
	}
	s.Write(t, lines...)
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()
	rows, err := c.ColdChain(context.Background(), fleet.ColdChainQuery{
		Compartments: []fleet.Compartment{{DeviceID: "st-1", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5,
			StuckAfter: 20 * time.Minute}},
		From: at("03-01 00:00"), To: at("03-02 00:00"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	if r.MinutesUntrusted != 100 || r.MinutesAbove != 0 || r.MinutesNoData != 0 || r.PeakC == nil || *r.PeakC != 3.2 || r.Samples != 288 {
		t.Errorf("report %+v (peak %v): want 100 minutes untrusted, none above, none without data, peak 3.2, 288 samples", r, r.PeakC)
	}
}

// InfluxDB streams a long series in chunks of 10,000 readings: the report joins them into one
// compartment, every reading counted once, whatever other compartments follow.
func TestColdChainLongSeries(t *testing.T) {
	s := testinflux.Require(t)
	var lines []string
	for tm := at("03-01 00:00"); tm.Before(at("03-05 00:00")); tm = tm.Add(30 * time.Second) { // 11,520 readings
		lines = append(lines, compartmentLine("lg-1", "oak", 1, tm, 4))
	}
	lines = append(lines, compartmentLine("lg-1", "oak", 2, at("03-02 12:00"), 9), compartmentLine("lg-2", "oak", 1, at("03-03 12:00"), 9))
	for len(lines) > 0 {
		n := min(len(lines), 5000)
		s.Write(t, lines[:n]...)
		lines = lines[n:]
	}
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()
	rows, err := c.ColdChain(context.Background(), fleet.ColdChainQuery{
		Compartments: []fleet.Compartment{
			{DeviceID: "lg-1", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5},
			{DeviceID: "lg-1", Site: "oak", Door: 2, Class: fleet.ClassChilled, ThresholdC: 5},
			{DeviceID: "lg-2", Site: "oak", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5},
		},
		From: at("03-01 00:00"), To: at("03-05 00:00"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		if r.Samples > 0 {
			got = append(got, fmt.Sprintf("%s/%d %s n=%d above=%v nodata=%v", r.DeviceID, r.Door, r.Date, r.Samples, r.MinutesAbove, r.MinutesNoData))
		}
	}
	want := "[lg-1/1 2026-03-01 n=2880 above=0 nodata=0 lg-1/1 2026-03-02 n=2880 above=0 nodata=0 " +
		"lg-1/1 2026-03-03 n=2880 above=0 nodata=0 lg-1/1 2026-03-04 n=2880 above=0 nodata=0 " +
		"lg-1/2 2026-03-02 n=1 above=5 nodata=1435 lg-2/1 2026-03-03 n=1 above=5 nodata=1435]"
	if fmt.Sprint(got) != want {
		t.Errorf("report %v\nwant %s", got, want)
	}
}
