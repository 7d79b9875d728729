package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Without InfluxDB the hub is degraded, not unready: the spool keeps the telemetry.
func TestReadyWhileInfluxDown(t *testing.T) {
	hub := startHub(t, env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t)))
	code, body := hub.get(t, "/readyz")
	var got struct {
		Status   string
		Checks   map[string]string
		Degraded []string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code != 200 || got.Status != "degraded" || fmt.Sprint(got.Degraded) != "[influxdb]" ||
		!strings.Contains(got.Checks["influxdb"], "influxdb unreachable") || got.Checks["database"] != "ok" || got.Checks["http"] != "ok" {
		t.Fatalf("/readyz with InfluxDB down: %d %s", code, body)
	}
}
