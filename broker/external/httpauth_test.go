package external_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/broker/external"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

const sharedSecret = "0123456789abcdef-shared"

type fixture struct {
	url     string
	secrets map[string]string
	reg     *prometheus.Registry
}

// newFixture serves the handler at /broker/ over a real registry with devices a (enabled) and
// b (disabled).
func newFixture(t *testing.T, secret string) *fixture {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	db, err := sqldb.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	f := &fixture{secrets: map[string]string{}, reg: prometheus.NewRegistry()}
	for _, id := range []string{"a", "b"} {
		s, err := devices.CreateDevice(ctx, &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "elm", Doors: 4})
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[id] = s
	}
	if _, err := devices.SetEnabled(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/broker/", external.NewAuthHandler(devices, external.AuthOptions{Secret: secret, Registerer: f.reg}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/broker/"
	return f
}

// post sends body to path with the shared secret as a bearer token and returns the status and
// the decoded response.
func (f *fixture) post(t *testing.T, path string, body any, header ...string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.url+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+sharedSecret)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, raw)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: Content-Type %q", path, ct)
		}
	}
	return resp.StatusCode, out
}

func TestSharedSecret(t *testing.T) {
	f := newFixture(t, sharedSecret)
	body := `{"clientid":"a","username":"a","password":"x"}`
	for _, tc := range []struct {
		name   string
		set    func(*http.Request)
		status int
	}{
		{"none", func(*http.Request) {}, http.StatusUnauthorized},
		{"wrong bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+sharedSecret+"x") }, http.StatusUnauthorized},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, http.StatusUnauthorized},
		{"wrong basic", func(r *http.Request) { r.SetBasicAuth("lockerhub", "nope") }, http.StatusUnauthorized},
		{"secret as basic user", func(r *http.Request) { r.SetBasicAuth(sharedSecret, "") }, http.StatusUnauthorized},
		{"query parameter", func(r *http.Request) { r.URL.RawQuery = "secret=" + sharedSecret }, http.StatusUnauthorized},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+sharedSecret) }, http.StatusOK},
		{"basic, as VerneMQ sends it from the URL", func(r *http.Request) { r.SetBasicAuth("lockerhub", sharedSecret) }, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.url+"emqx/authn", strings.NewReader(body))
			tc.set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if n := counter(t, f.reg, "lockerhub_brokerauth_refused_requests_total", "reason", "secret"); n != 6 {
		t.Errorf("refused for the secret: %v, want 6", n)
	}

	// Without a configured secret nothing gets in, not even a request with an empty one.
	g := newFixture(t, "")
	if status, _ := g.post(t, "emqx/authn", map[string]string{"username": "a"}, "Authorization", "Bearer "); status != http.StatusUnauthorized {
		t.Fatalf("no secret configured: status %d, want 401", status)
	}
	if err := (external.AuthOptions{Secret: "short"}).Validate(); err != external.ErrWeakAuthSecret {
		t.Fatalf("Validate(short) = %v", err)
	}
}

func TestEMQX(t *testing.T) {
	f := newFixture(t, sharedSecret)
	a := f.secrets["a"]
	for _, tc := range []struct {
		name, path string
		body       map[string]string
		want       string
	}{
		{"right secret", "authn", map[string]string{"clientid": "a", "username": "a", "password": a}, "allow"},
		{"wrong secret", "authn", map[string]string{"clientid": "a", "username": "a", "password": f.secrets["b"]}, "deny"},
		{"no password", "authn", map[string]string{"clientid": "a", "username": "a"}, "deny"},
		{"client id not the device id", "authn", map[string]string{"clientid": "b", "username": "a", "password": a}, "deny"},
		{"disabled", "authn", map[string]string{"clientid": "b", "username": "b", "password": f.secrets["b"]}, "deny"},
		{"unknown device", "authn", map[string]string{"clientid": "c", "username": "c", "password": a}, "deny"},
		{"hub user", "authn", map[string]string{"clientid": "hub_1", "username": "hub_1", "password": "p"}, "ignore"},
		{"no username", "authn", map[string]string{"clientid": "x"}, "ignore"},

		{"publish own telemetry", "authz", map[string]string{"clientid": "a", "username": "a", "action": "publish", "topic": "lockers/a/telemetry"}, "allow"},
		{"publish own status", "authz", map[string]string{"clientid": "a", "username": "a", "action": "publish", "topic": "lockers/a/status"}, "allow"},
		{"publish another's telemetry", "authz", map[string]string{"clientid": "a", "username": "a", "action": "publish", "topic": "lockers/b/telemetry"}, "deny"},
		{"publish a command", "authz", map[string]string{"clientid": "a", "username": "a", "action": "publish", "topic": "lockers/a/cmd/request"}, "deny"},
		{"subscribe own commands", "authz", map[string]string{"clientid": "a", "username": "a", "action": "subscribe", "topic": "lockers/a/cmd/#"}, "allow"},
		{"subscribe another's commands", "authz", map[string]string{"clientid": "a", "username": "a", "action": "subscribe", "topic": "lockers/b/cmd/#"}, "deny"},
		{"subscribe everything", "authz", map[string]string{"clientid": "a", "username": "a", "action": "subscribe", "topic": "#"}, "deny"},
		{"shared subscription", "authz", map[string]string{"clientid": "a", "username": "a", "action": "subscribe", "topic": "$share/g/lockers/a/cmd/#"}, "deny"},
		{"unknown action", "authz", map[string]string{"clientid": "a", "username": "a", "action": "all", "topic": "lockers/a/telemetry"}, "deny"},
		{"authz of another client id", "authz", map[string]string{"clientid": "b", "username": "a", "action": "publish", "topic": "lockers/a/telemetry"}, "deny"},
		{"disabled device publishing", "authz", map[string]string{"clientid": "b", "username": "b", "action": "publish", "topic": "lockers/b/telemetry"}, "deny"},
		{"hub user publishing a command", "authz", map[string]string{"clientid": "hub_1", "username": "hub_1", "action": "publish", "topic": "lockers/a/cmd/request"}, "ignore"},
	} {
		t.Run(tc.path+"/"+tc.name, func(t *testing.T) {
			status, out := f.post(t, "emqx/"+tc.path, tc.body)
			if status != http.StatusOK || out["result"] != tc.want {
				t.Fatalf("status %d, %v; want 200, result %s", status, out, tc.want)
			}
			if su, ok := out["is_superuser"]; ok && su != false {
				t.Fatalf("is_superuser = %v", su)
			}
		})
	}
	if n := counter(t, f.reg, "lockerhub_brokerauth_decisions_total", "endpoint", "emqx_authn", "result", "deny"); n != 5 {
		t.Errorf("emqx_authn denials = %v, want 5", n)
	}
	if status, _ := f.post(t, "emqx/authn", "not an object"); status != http.StatusBadRequest {
		t.Errorf("bad body: status %d", status)
	}
	if status, _ := f.post(t, "emqx/authn", map[string]string{"username": "a", "password": strings.Repeat("x", 100<<10)}); status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 64 KiB: status %d, want 413", status)
	}
	if status, _ := f.post(t, "emqx/other", map[string]string{}); status != http.StatusNotFound {
		t.Errorf("unknown endpoint: status %d", status)
	}
}

func TestVerneMQ(t *testing.T) {
	f := newFixture(t, sharedSecret)
	a := f.secrets["a"]
	ok := map[string]any{"result": "ok"}
	next := map[string]any{"result": "next"}
	notAllowed := map[string]any{"result": map[string]any{"error": "not_allowed"}}
	topics := func(ts ...string) []map[string]any {
		var l []map[string]any
		for _, t := range ts {
			l = append(l, map[string]any{"topic": t, "qos": 1})
		}
		return l
	}
	for _, tc := range []struct {
		name, hook string
		body       map[string]any
		want       map[string]any
	}{
		{"register", "auth_on_register", map[string]any{"username": "a", "password": a, "client_id": "a", "mountpoint": "", "clean_session": true}, ok},
		{"register mqtt 5", "auth_on_register_m5", map[string]any{"username": "a", "password": a, "client_id": "a", "mountpoint": "", "clean_start": true, "properties": map[string]any{}}, ok},
		{"register wrong secret", "auth_on_register", map[string]any{"username": "a", "password": "x", "client_id": "a", "mountpoint": ""}, notAllowed},
		{"register other client id", "auth_on_register_m5", map[string]any{"username": "a", "password": a, "client_id": "b", "mountpoint": ""}, notAllowed},
		{"register disabled", "auth_on_register", map[string]any{"username": "b", "password": f.secrets["b"], "client_id": "b", "mountpoint": ""}, notAllowed},
		{"register with a mountpoint", "auth_on_register", map[string]any{"username": "a", "password": a, "client_id": "a", "mountpoint": "m"}, notAllowed},
		{"register hub user", "auth_on_register", map[string]any{"username": "hub_1", "password": "p", "client_id": "hub_1", "mountpoint": ""}, next},
		{"register without username", "auth_on_register", map[string]any{"username": nil, "password": nil, "client_id": "x", "mountpoint": ""}, next},

		{"subscribe own commands", "auth_on_subscribe", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "topics": topics("lockers/a/cmd/#")}, ok},
		{"subscribe one topic too many", "auth_on_subscribe_m5", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "topics": topics("lockers/a/cmd/#", "lockers/b/cmd/#"), "properties": map[string]any{}}, notAllowed},
		{"subscribe everything", "auth_on_subscribe", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "topics": topics("#")}, notAllowed},
		{"subscribe nothing", "auth_on_subscribe", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "topics": topics()}, notAllowed},
		{"subscribe hub user", "auth_on_subscribe", map[string]any{"username": "hub_1", "client_id": "hub_1", "mountpoint": "", "topics": topics("$share/lockerhub/lockers/+/telemetry")}, next},

		{"publish telemetry", "auth_on_publish", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "qos": 1, "topic": "lockers/a/telemetry", "payload": "e30=", "retain": false}, ok},
		{"publish retained telemetry", "auth_on_publish_m5", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "qos": 1, "topic": "lockers/a/telemetry", "payload": "e30=", "retain": true, "properties": map[string]any{}},
			map[string]any{"result": "ok", "modifiers": map[string]any{"retain": false}}},
		{"publish retained status", "auth_on_publish", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "qos": 1, "topic": "lockers/a/status", "payload": "e30=", "retain": true}, ok},
		{"publish a command", "auth_on_publish", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "qos": 1, "topic": "lockers/a/cmd/request", "payload": "e30=", "retain": false}, notAllowed},
		{"publish as another device", "auth_on_publish_m5", map[string]any{"username": "a", "client_id": "a", "mountpoint": "", "qos": 1, "topic": "lockers/b/events", "payload": "e30=", "retain": false}, notAllowed},
		{"publish disabled", "auth_on_publish", map[string]any{"username": "b", "client_id": "b", "mountpoint": "", "qos": 1, "topic": "lockers/b/telemetry", "payload": "e30=", "retain": false}, notAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := f.post(t, "vernemq/"+tc.hook, tc.body, "vernemq-hook", tc.hook)
			want, _ := json.Marshal(tc.want)
			got, _ := json.Marshal(out)
			if status != http.StatusOK || string(got) != string(want) {
				t.Fatalf("status %d, %s; want 200, %s", status, got, want)
			}
		})
	}
	if status, _ := f.post(t, "vernemq/auth_on_publish", map[string]any{"username": "a"}, "vernemq-hook", "auth_on_register"); status != http.StatusBadRequest {
		t.Errorf("hook header for another endpoint: status %d, want 400", status)
	}
	if status, _ := f.post(t, "vernemq/on_publish", map[string]any{"username": "a"}); status != http.StatusNotFound {
		t.Errorf("a hook that is not served: status %d, want 404", status)
	}
}

// counter returns the value of the counter name with the given label pairs.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
