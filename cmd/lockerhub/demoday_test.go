package main_test

import (
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// The demo at its default settings looks like a fleet on a normal day: fridges and freezers
// start cold at their setpoints, except the one being commissioned, which starts at room
// temperature; few units alert; every fault injected is printed as it starts and clears and
// listed on the dashboard's demo panel, which only the demo serves.
func TestDemoNormalDay(t *testing.T) {
	t.Parallel()
	d := startDemo(t, t.TempDir(), "--control", "127.0.0.1:0")
	commissioning := regexp.MustCompile(`(?m)^Being commissioned: (\S+) starts at room temperature`).FindStringSubmatch(d.stdout.String())
	if commissioning == nil {
		t.Fatalf("the demo does not say which fridge is being commissioned:\n%s", d.stdout.String())
	}
	var control string
	testhub.WaitFor(t, 20*time.Second, "the control surface's address", func() bool {
		m := regexp.MustCompile(`control surface on (\S+) `).FindStringSubmatch(d.stderr.String())
		if m != nil {
			control = m[1]
		}
		return m != nil
	})

	// Every fridge's first readings: at its setpoint, or at room temperature while commissioned.
	var devices struct{ Devices []fleet.Device }
	if code, body := d.hub.getAs(t, d.token, "/api/v1/devices"); code != 200 || json.Unmarshal([]byte(body), &devices) != nil {
		t.Fatalf("devices: %d %s", code, body)
	}
	for _, dev := range devices.Devices {
		if dev.Kind != fleet.KindFridge {
			continue
		}
		want := 3.0
		switch {
		case dev.ID == commissioning[1]:
			want = 20
		case fleet.ClassOf(&dev) == fleet.ClassFreezer:
			want = -18
		}
		var temps []float64
		testhub.WaitFor(t, 20*time.Second, dev.ID+"'s first snapshot", func() bool {
			var v struct{ Live *fleet.LiveState }
			_, body := d.hub.getAs(t, d.token, "/api/v1/devices/"+dev.ID)
			if json.Unmarshal([]byte(body), &v) != nil || v.Live == nil || v.Live.Snapshot == nil {
				return false
			}
			temps = temps[:0]
			for _, ds := range v.Live.Snapshot.Doors {
				if ds.TempC != nil {
					temps = append(temps, *ds.TempC)
				}
			}
			return len(temps) > 0
		})
		for _, c := range temps {
			if math.Abs(c-want) > 1.5 {
				t.Errorf("%s (%s) starts at %.1f °C, want about %.0f °C", dev.ID, fleet.ClassOf(&dev), c, want)
			}
		}
	}

	// The first seconds: most units are green.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var h struct{ Total fleet.SiteHealth }
		if code, body := d.hub.getAs(t, d.token, "/api/v1/health"); code != 200 || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("health: %d %s", code, body)
		} else if bad := h.Total.Warning + h.Total.Critical + h.Total.Offline; bad*10 > h.Total.Units {
			t.Fatalf("%d of %d units are not ok at the start of the demo: %s", bad, h.Total.Units, body)
		}
		time.Sleep(time.Second)
	}

	// A fault on demand is printed as it starts and clears, and listed on the panel meanwhile.
	unit := devices.Devices[0].ID
	setFault := func(on bool) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"unit": unit, "fault": "stuck-sensor", "on": on})
		resp, err := http.Post("http://"+control+"/v1/faults", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("set fault: %s", resp.Status)
		}
	}
	var panel struct {
		Active, Cleared []struct{ Unit, Fault string }
	}
	getPanel := func() {
		t.Helper()
		if code, body := d.hub.getAs(t, d.token, "/api/v1/demo"); code != 200 || json.Unmarshal([]byte(body), &panel) != nil {
			t.Fatalf("GET /api/v1/demo: %d %s", code, body)
		}
	}
	setFault(true)
	getPanel()
	if len(panel.Active) == 0 || panel.Active[len(panel.Active)-1].Unit != unit || panel.Active[len(panel.Active)-1].Fault != "stuck-sensor" {
		t.Errorf("the panel does not list the fault set on demand as active: %+v", panel)
	}
	setFault(false)
	getPanel()
	if len(panel.Cleared) == 0 || panel.Cleared[0].Unit != unit {
		t.Errorf("the panel does not list the fault cleared on demand: %+v", panel)
	}
	for _, want := range []string{"fault started: " + unit + " stuck-sensor (on demand)\n", "fault cleared: " + unit + " stuck-sensor (on demand)\n"} {
		if !strings.Contains(d.stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, d.stdout.String())
		}
	}

	// The dashboard loads the panel.
	_, index := d.hub.get(t, "/")
	if !strings.Contains(index, `<script type="module" src="demo/panel.js">`) {
		t.Errorf("the demo's dashboard does not load the panel:\n%s", index)
	}
	if code, body := d.hub.get(t, "/demo/panel.js"); code != 200 || !strings.Contains(body, "api.js") {
		t.Errorf("GET /demo/panel.js: %d %.200s", code, body)
	}
}

// A hub that serves has nothing of the demo's panel: no script, no endpoint.
func TestServeHasNoDemoPanel(t *testing.T) {
	environ := env(t.TempDir())
	hub := startHub(t, environ)
	token := createToken(t, environ, "--name", "viewer", "--role", "viewer")
	if _, index := hub.get(t, "/"); strings.Contains(index, "demo") {
		t.Errorf("the dashboard of serve mentions the demo:\n%s", index)
	}
	for _, path := range []string{"/demo/panel.js", "/demo/panel.css", "/api/v1/demo"} {
		if code, body := hub.getAs(t, token.Token, path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %.200s, want 404", path, code, body)
		}
	}
}
