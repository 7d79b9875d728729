package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// tm parses "01-02 15:04" as a time in March 2026 (February for 02-..), UTC.
func tm(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", "2026-"+s)
	if err != nil {
		panic(err)
	}
	return t
}

// readings turns "01-02 15:04", value pairs into points.
func readings(pairs ...any) []HistoryPoint {
	var out []HistoryPoint
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, HistoryPoint{T: tm(pairs[i].(string)), V: pairs[i+1].(float64)})
	}
	return out
}

// summary writes rows as "date above=M nodata=M peak=C n=N", one per row, for readable diffs.
func summary(rows []ColdChainDay) string {
	var b strings.Builder
	for _, r := range rows {
		peak := "-"
		if r.PeakC != nil {
			peak = fmt.Sprint(*r.PeakC)
		}
		fmt.Fprintf(&b, "%s above=%v nodata=%v peak=%s n=%d\n", r.Date, r.MinutesAbove, r.MinutesNoData, peak, r.Samples)
	}
	return b.String()
}

func TestColdChainDays(t *testing.T) {
	chilled := Compartment{DeviceID: "fridge-1", Site: "oak", Door: 2, Class: ClassChilled, ThresholdC: 5}
	freezer := Compartment{DeviceID: "freezer-1", Site: "oak", Door: 1, Class: ClassFreezer, ThresholdC: -12}
	for _, tc := range []struct {
		name     string
		c        Compartment
		samples  []HistoryPoint
		from, to time.Time
		want     string
	}{
		{
			// 23:54 and 23:58 above until 00:02, 00:02 above until 00:05; the 23:58 reading is
			// split 2 + 2 at midnight. Each day is clipped to 10 minutes, all of them held.
			name:    "excursion crossing midnight",
			c:       chilled,
			samples: readings("03-01 23:50", 4.0, "03-01 23:54", 6.0, "03-01 23:58", 7.5, "03-02 00:02", 8.0, "03-02 00:05", 4.0),
			from:    tm("03-01 23:50"), to: tm("03-02 00:10"),
			want: "2026-03-01 above=6 nodata=0 peak=7.5 n=3\n" +
				"2026-03-02 above=5 nodata=0 peak=8 n=2\n",
		},
		{
			// 10:00 holds 5 of its 20 minutes (15 no data), 10:24 holds 5 of 6 (1 no data), 10:30
			// is above for 5 then 15 no data, 10:50 equals the threshold: held, not above, then
			// 5 no data to the end.
			name:    "gaps longer than maxGap and a reading at the threshold",
			c:       chilled,
			samples: readings("03-01 10:00", 6.0, "03-01 10:20", 4.0, "03-01 10:24", 4.0, "03-01 10:30", 9.0, "03-01 10:50", 5.0),
			from:    tm("03-01 10:00"), to: tm("03-01 11:00"),
			want: "2026-03-01 above=10 nodata=36 peak=9 n=5\n",
		},
		{
			name:    "a day without readings",
			c:       chilled,
			samples: readings("03-01 12:00", 6.0, "03-03 12:00", 4.0),
			from:    tm("03-01 00:00"), to: tm("03-04 00:00"),
			want: "2026-03-01 above=5 nodata=1435 peak=6 n=1\n" +
				"2026-03-02 above=0 nodata=1440 peak=- n=0\n" +
				"2026-03-03 above=0 nodata=1435 peak=4 n=1\n",
		},
		{
			name:    "readings exactly at the threshold are not above",
			c:       chilled,
			samples: readings("03-01 00:00", 5.0, "03-01 00:05", 5.0, "03-01 00:10", 5.01),
			from:    tm("03-01 00:00"), to: tm("03-01 00:15"),
			want: "2026-03-01 above=5 nodata=0 peak=5.01 n=3\n",
		},
		{
			name:    "freezer threshold",
			c:       freezer,
			samples: readings("03-01 00:00", -12.0, "03-01 00:05", -11.5, "03-01 00:10", -18.0),
			from:    tm("03-01 00:00"), to: tm("03-01 00:15"),
			want: "2026-03-01 above=5 nodata=0 peak=-11.5 n=3\n",
		},
		{
			// 02-28 23:50 holds until 23:55, before the range; 23:58 holds into it for 3 minutes
			// (above) but is not that day's peak. 01:00 is at `to`, outside the range.
			name: "readings outside the range",
			c:    chilled,
			samples: readings("02-28 23:50", 9.0, "02-28 23:58", 8.0, "03-01 00:04", 4.0, "03-01 00:55", 7.0,
				"03-01 01:00", 30.0),
			from: tm("03-01 00:00"), to: tm("03-01 01:00"),
			want: "2026-03-01 above=8 nodata=47 peak=7 n=2\n",
		},
		{
			name: "no readings at all",
			c:    chilled,
			from: tm("03-01 06:00"), to: tm("03-03 00:00"),
			want: "2026-03-01 above=0 nodata=1080 peak=- n=0\n" +
				"2026-03-02 above=0 nodata=1440 peak=- n=0\n",
		},
		{
			// 01:00 to 03:00 at UTC+2 are 23:00 to 01:00 UTC: two UTC days of an hour each.
			name: "days are UTC days",
			c:    chilled,
			from: time.Date(2026, 3, 1, 1, 0, 0, 0, time.FixedZone("EET", 2*3600)),
			to:   time.Date(2026, 3, 1, 3, 0, 0, 0, time.FixedZone("EET", 2*3600)),
			want: "2026-02-28 above=0 nodata=60 peak=- n=0\n" +
				"2026-03-01 above=0 nodata=60 peak=- n=0\n",
		},
		{
			name:    "empty range",
			c:       chilled,
			samples: readings("03-01 00:00", 9.0),
			from:    tm("03-01 00:00"), to: tm("03-01 00:00"),
			want: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := ColdChainDays(tc.c, tc.samples, tc.from, tc.to, 5*time.Minute)
			if got := summary(rows); got != tc.want {
				t.Errorf("got\n%swant\n%s", got, tc.want)
			}
			for _, r := range rows {
				if r.DeviceID != tc.c.DeviceID || r.Site != tc.c.Site || r.Door != tc.c.Door || r.Class != tc.c.Class || r.ThresholdC != tc.c.ThresholdC {
					t.Errorf("row %+v does not carry the compartment %+v", r, tc.c)
				}
			}
		})
	}
}

func TestColdChainQueryValidate(t *testing.T) {
	from := tm("03-01 00:00")
	ok := []Compartment{{DeviceID: "fridge-1", Door: 1}}
	for _, tc := range []struct {
		name string
		q    ColdChainQuery
		want string // substring of the error; "" for none
	}{
		{"a day", ColdChainQuery{Compartments: ok, From: from, To: from.Add(24 * time.Hour)}, ""},
		{"the longest range", ColdChainQuery{From: from, To: from.AddDate(0, 0, MaxColdChainDays)}, ""},
		{"too long", ColdChainQuery{From: from, To: from.AddDate(0, 0, MaxColdChainDays).Add(time.Millisecond)}, "at most 93 days"},
		{"empty", ColdChainQuery{From: from, To: from}, "must be before"},
		{"backwards", ColdChainQuery{From: from, To: from.Add(-time.Hour)}, "must be before"},
		{"bad device", ColdChainQuery{Compartments: []Compartment{{DeviceID: `x") or true`, Door: 1}}, From: from, To: from.Add(time.Hour)}, "invalid device"},
		{"bad door", ColdChainQuery{Compartments: []Compartment{{DeviceID: "fridge-1"}}, From: from, To: from.Add(time.Hour)}, "door 0"},
	} {
		err := tc.q.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an EINVALID error saying %q", tc.name, err, tc.want)
		}
	}
}
