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

func TestSumLabeled(t *testing.T) {
	text := `# TYPE lockerhub_external_messages_received_total counter
lockerhub_external_messages_received_total{channel="telemetry",subscription="shared"} 40
lockerhub_external_messages_received_total{channel="result",subscription="shared"} 2
lockerhub_external_messages_received_total{channel="telemetry",subscription="all"} 80
lockerhub_external_messages_received_total_other{subscription="shared"} 7
`
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"subscription": "shared"}, 42},
		{map[string]string{"subscription": "shared", "channel": "telemetry"}, 40},
		{nil, 122},
		{map[string]string{"subscription": "none"}, 0},
	} {
		if got := sumLabeled(text, "lockerhub_external_messages_received_total", c.labels); got != c.want {
			t.Errorf("%v: got %v, want %v", c.labels, got, c.want)
		}
	}
}

func TestByLabel(t *testing.T) {
	e := Exposition(`# TYPE lockerhub_mqtt_connections_refused_total counter
lockerhub_mqtt_connections_refused_total{reason="max_pending_per_source"} 4500
lockerhub_mqtt_connections_refused_total{reason="max_pending"} 3
lockerhub_mqtt_auth_failures_total{reason="throttled"} 9
`)
	got := e.ByLabel("lockerhub_mqtt_connections_refused_total", "reason")
	if len(got) != 2 || got["max_pending_per_source"] != 4500 || got["max_pending"] != 3 {
		t.Errorf("got %v, want max_pending_per_source 4500 and max_pending 3 only", got)
	}
	if got := e.ByLabel("absent", "reason"); len(got) != 0 {
		t.Errorf("absent series: got %v, want none", got)
	}
}
