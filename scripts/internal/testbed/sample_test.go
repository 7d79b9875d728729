package testbed

import "testing"

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
lockerhub_mqtt_messages_rejected_total{reason="too_large"} 2
lockerhub_mqtt_messages_rejected_total{reason="invalid"} 3 1700000000000
process_open_fds 17
`
	got := parseMetrics(text, []string{"go_goroutines", "lockerhub_mqtt_messages_rejected_total", "absent"})
	want := map[string]float64{"go_goroutines": 42, "lockerhub_mqtt_messages_rejected_total": 5}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
