package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose: 100..1
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 99, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(3, 1, 2), 100, 3 * time.Millisecond},
		{"nearest rank rounds up", ms(1, 2, 3, 4), 60, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.ds, tt.p, got, tt.want)
			}
		})
	}
	in := ms(3, 1, 2)
	percentile(in, 50)
	if in[0] != 3*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}

func TestFlatness(t *testing.T) {
	tests := []struct {
		name     string
		values   []float64
		warmup   int
		rel, abs float64
		pass     bool
	}{
		{"flat", []float64{50, 10, 10, 10, 10, 10, 10}, 1, 0, 0, true},
		{"noise within the absolute slack", []float64{10, 12, 9, 11, 13, 10, 12}, 0, 0, 5, true},
		{"steady growth is a leak", []float64{10, 20, 30, 40, 50, 60}, 0, 0.1, 5, false},
		{"growth within the relative slack", []float64{100, 100, 104, 105, 108, 108}, 0, 0.1, 0, true},
		{"warm-up spike is ignored", []float64{500, 400, 100, 100, 100, 100, 100, 100}, 2, 0, 1, true},
		{"falling is flat", []float64{30, 25, 20, 15, 10, 5}, 0, 0, 0, true},
		{"too few samples cannot pass", []float64{1, 1, 1}, 1, 1, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := flatness("x", tt.values, tt.warmup, tt.rel, tt.abs)
			if got.Pass != tt.pass {
				t.Errorf("flatness(%v) = %+v, want pass %v", tt.values, got, tt.pass)
			}
		})
	}
	got := flatness("x", []float64{0, 1, 2, 3, 4, 5, 6}, 1, 0.5, 2)
	// After the warm-up: 1..6, thirds of two: first mean 1.5, last mean 5.5, limit 1.5*1.5+2.
	if got.FirstMean != 1.5 || got.LastMean != 5.5 || got.Limit != 4.25 || got.Pass {
		t.Errorf("flatness thirds = %+v, want first 1.5, last 5.5, limit 4.25, fail", got)
	}
}

func TestTally(t *testing.T) {
	stored := func(seqs ...uint64) map[uint64]int {
		m := map[uint64]int{}
		for _, s := range seqs {
			m[s]++
		}
		return m
	}
	tests := []struct {
		name   string
		ledger unitLedger
		stored map[uint64]int
		want   delivery
	}{
		{"all stored", unitLedger{ID: "a", LastSeq: 3}, stored(1, 2, 3),
			delivery{Sent: 3, Acked: 3, Arrived: 3}},
		{"pending ones may be missing", unitLedger{ID: "a", LastSeq: 4, Pending: []uint64{4}}, stored(1, 2, 3),
			delivery{Sent: 4, Acked: 3, Unacked: 1, Arrived: 3}},
		{"results account for missing seqs", unitLedger{ID: "a", LastSeq: 4, Results: 1}, stored(1, 2, 4),
			delivery{Sent: 4, Acked: 4, Results: 1, Arrived: 3}},
		{"an acknowledged seq missing is lost", unitLedger{ID: "a", LastSeq: 4}, stored(1, 3, 4),
			delivery{Sent: 4, Acked: 4, Arrived: 3, Lost: 1, Missing: map[string][]uint64{"a": {2}}}},
		{"a seq stored twice is a duplicate", unitLedger{ID: "a", LastSeq: 2}, stored(1, 2, 2),
			delivery{Sent: 2, Acked: 2, Arrived: 2, Duplicates: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d delivery
			d.tally(tt.ledger, tt.stored)
			if d.Sent != tt.want.Sent || d.Acked != tt.want.Acked || d.Unacked != tt.want.Unacked || d.Results != tt.want.Results ||
				d.Arrived != tt.want.Arrived || d.Lost != tt.want.Lost || d.Duplicates != tt.want.Duplicates ||
				len(d.Missing) != len(tt.want.Missing) {
				t.Fatalf("tally = %+v, want %+v", d, tt.want)
			}
			for id, seqs := range tt.want.Missing {
				if !equalSeqs(d.Missing[id], seqs) {
					t.Errorf("missing[%s] = %v, want %v", id, d.Missing[id], seqs)
				}
			}
		})
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWithinFlood(t *testing.T) {
	if !withinFlood(2*10+20, 10) {
		t.Error("exactly at the threshold should pass")
	}
	if withinFlood(40.1, 10) {
		t.Error("above the threshold should fail")
	}
}

func TestReportMarkdown(t *testing.T) {
	ok := &caseResult{Name: "malformed", Title: "t"}
	ok.check("c", true, "fine")
	ok.finish(time.Now(), nil)
	bad := &caseResult{Name: "hub-kill", Title: "t"}
	bad.checkDelivery(&delivery{Sent: 12345, Acked: 12000, Arrived: 11999, Lost: 1})
	bad.finish(time.Now(), nil)
	empty := &caseResult{Name: "soak"}
	empty.finish(time.Now(), nil)
	if !ok.Pass || bad.Pass || empty.Pass {
		t.Fatalf("pass = %v, %v, %v; want true, false, false (a case without checks proves nothing)", ok.Pass, bad.Pass, empty.Pass)
	}
	md := (&report{Cases: []*caseResult{ok, bad}}).markdown()
	for _, want := range []string{"| malformed | – | – | – | – |", "| hub-kill | 12,345 | 12,000 | 11,999 | 1 |", "✗ zero loss of acknowledged data", "**FAIL**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSoakSVG(t *testing.T) {
	samples := make([]sample, 25)
	for i := range samples {
		samples[i] = sample{T: float64(i * 5), RSSMiB: 80 + float64(i%3), Goroutines: 230, OpenFDs: 120}
	}
	doc := soakSVG(samples, 25)
	dec := xml.NewDecoder(strings.NewReader(doc))
	var polylines []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Space + " " + se.Name.Local
			}
			if se.Name.Local == "polyline" {
				for _, a := range se.Attr {
					if a.Name.Local == "points" {
						polylines = append(polylines, a.Value)
					}
				}
			}
		}
	}
	if root != "http://www.w3.org/2000/svg svg" {
		t.Errorf("root element %q, want svg in the SVG namespace", root)
	}
	if len(polylines) != len(chartSeries) {
		t.Fatalf("%d polylines, want one per series (%d)", len(polylines), len(chartSeries))
	}
	for i, p := range polylines {
		if n := len(strings.Fields(p)); n != len(samples) {
			t.Errorf("polyline %d has %d points, want %d", i, n, len(samples))
		}
	}
	if bytes.Contains([]byte(doc), []byte("NaN")) {
		t.Error("chart holds NaN coordinates")
	}
	// No samples (a soak that could not measure) must still be a valid document.
	if err := xml.Unmarshal([]byte(soakSVG(nil, 0)), new(struct{})); err != nil {
		t.Errorf("empty chart: %v", err)
	}
}

func TestRemainingLength(t *testing.T) {
	for n, want := range map[int][]byte{0: {0}, 127: {0x7f}, 128: {0x80, 1}, 16383: {0xff, 0x7f}, 2097152: {0x80, 0x80, 0x80, 1}} {
		if got := remainingLength(n); !bytes.Equal(got, want) {
			t.Errorf("remainingLength(%d) = % x, want % x", n, got, want)
		}
	}
}

// A door event counts as acknowledged only once its PUBACK arrived: one the hub answered
// is not pending, one whose connection was closed first is, as in an agent's outbox.
func TestDoorEventsLedger(t *testing.T) {
	client, hub := net.Pipe()
	go func() {
		buf := make([]byte, 4096)
		hub.Read(buf) // the first event: acknowledged
		hub.Write([]byte{0x40, 2, 0, 1})
		hub.Read(buf) // the second: the connection closes before its PUBACK
		hub.Close()
	}()
	ev := newDoorEvents("unit-1")
	if err := ev.publish(client); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if err := ev.publish(client); err == nil {
		t.Fatal("second publish acknowledged on a closed connection")
	}
	l := ev.ledger()
	if l.ID != "unit-1" || l.LastSeq != 2 || !equalSeqs(l.Pending, []uint64{2}) {
		t.Errorf("ledger = %+v, want unit-1, last seq 2, pending [2]", l)
	}
}

func TestLogTally(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lockerhub.log")
	text := `{"time":"2026-12-05T09:12:52Z","level":"WARN","msg":"mqtt.max_connections is above what the file descriptor limit allows; lowering it","max_connections":15000,"nofile":1500,"lowered_to":476}
{"time":"2026-12-05T09:12:56Z","level":"WARN","msg":"mqtt accept failed; retrying","listener":"tcp","error":"accept4: too many open files"}
{"time":"2026-12-05T09:12:57Z","level":"ERROR","msg":"background loop stopped; restarting","loop":"telemetry shipper"}
{"time":"2026-12-05T09:12:58Z","level":"INFO","msg":"device connected","device":"a"}
2026/12/05 09:12:56 http: Accept error: accept tcp 127.0.0.1:1: accept4: too many open files; retrying in 5ms
2026/12/05 09:12:57 http: Accept error: accept tcp 127.0.0.1:1: accept4: too many open files; retrying in 1s
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loweredMaxConnections(path); got != 476 {
		t.Errorf("loweredMaxConnections = %d, want 476", got)
	}
	want := map[string]int{
		"WARN mqtt.max_connections is above what the file descriptor limit allows; lowering it": 1,
		"WARN mqtt accept failed; retrying (tcp)":                                               1,
		"ERROR background loop stopped; restarting (telemetry shipper)":                         1,
		"TEXT http: Accept error: accept tcp 127.0.0.1:1: accept4: too many open files":         2,
	}
	got := logTally(path)
	if len(got) != len(want) {
		t.Fatalf("logTally = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("logTally[%q] = %d, want %d", k, got[k], n)
		}
	}
}

func TestDialErrorKind(t *testing.T) {
	reset := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	if got := dialErrorKind(reset); got != resetByPeer || got != "connection reset by peer" {
		t.Errorf("dialErrorKind(reset) = %q, want %q", got, "connection reset by peer")
	}
	_, err := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "127.0.0.1:1")
	if got := dialErrorKind(err); got != "timeout" {
		t.Errorf("dialErrorKind(%v) = %q, want timeout", err, got)
	}
}
