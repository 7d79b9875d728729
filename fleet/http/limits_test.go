package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

type answer struct {
	code   int
	header http.Header
	body   string
}

// call sends a request with the bearer token (none if empty) and a body (none if empty).
func call(t *testing.T, method, url, token, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// errorCode is the code of an API error answer.
func (a answer) errorCode() string {
	var e struct{ Error struct{ Code string } }
	json.Unmarshal([]byte(a.body), &e)
	return e.Error.Code
}

// Headers and bodies are bounded, bodies must be one JSON value, and every answer tells
// browsers not to guess its type; those that show a secret are never cached.
func TestRequestLimitsAndHeaders(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	for _, id := range []string{"oak-1", "oak-2"} {
		if _, err := reg.devices.CreateDevice(ctx, &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := commands.New(sqldb.NewCommandStore(reg.db), reg.devices, everyoneOnline{}, everyoneOnline{}, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{}, Commands: cmds})
	admin := reg.token(t, "admin", fleet.RoleAdmin)
	unlock := base + "/api/v1/devices/oak-1/doors/1/unlock?wait=false"

	var answers []answer
	check := func(name string, a answer, code int, errCode string) {
		t.Helper()
		answers = append(answers, a)
		if a.code != code || a.errorCode() != errCode {
			t.Errorf("%s: %d %s, want %d %q", name, a.code, a.body, code, errCode)
		}
	}
	// Written by net/http before any handler runs, so without the API's headers.
	if a := call(t, "GET", base+"/healthz", "", "", "X-Pad", strings.Repeat("x", 32<<10)); a.code != 431 {
		t.Errorf("header over 16 KiB: %d, want 431", a.code)
	}
	check("body over 16 KiB", call(t, "POST", unlock, admin, `{"reason":"`+strings.Repeat("x", 20<<10)+`"}`), 413, fleet.ETOOLARGE)
	check("two JSON values", call(t, "POST", unlock, admin, `{"reason":"a"}{"reason":"b"}`), 400, fleet.EINVALID)
	check("JSON and garbage", call(t, "POST", unlock, admin, `{"reason":"a"} x`), 400, fleet.EINVALID)
	check("token with trailing data", call(t, "POST", base+"/api/v1/tokens", admin, `{"name":"x","role":"viewer"}]`), 400, fleet.EINVALID)
	check("JSON and a newline", call(t, "POST", unlock, admin, "{\"reason\":\"a\"}\n"), 202, "")

	// An idempotency key stands for one request: the same again gets the first command, another
	// (device, door or action) is refused.
	key := []string{"Idempotency-Key", "retry-1"}
	first := call(t, "POST", unlock, admin, `{"reason":"parcel"}`, key...)
	again := call(t, "POST", unlock, admin, `{"reason":"parcel"}`, key...)
	check("first command", first, 202, "")
	check("same request again", again, 202, "")
	var c1, c2 struct{ Command fleet.Command }
	json.Unmarshal([]byte(first.body), &c1)
	json.Unmarshal([]byte(again.body), &c2)
	if c1.Command.ID == "" || c2.Command.ID != c1.Command.ID {
		t.Errorf("the same request with the same key made command %q, then %q", c1.Command.ID, c2.Command.ID)
	}
	check("same key, other door", call(t, "POST", base+"/api/v1/devices/oak-1/doors/2/unlock?wait=false", admin, `{"reason":"parcel"}`, key...), 422, fleet.EKEYREUSED)
	check("same key, other device", call(t, "POST", base+"/api/v1/devices/oak-2/doors/1/unlock?wait=false", admin, `{"reason":"parcel"}`, key...), 422, fleet.EKEYREUSED)
	check("same key, other action", call(t, "POST", base+"/api/v1/devices/oak-1/doors/1/lock?wait=false", admin, `{"reason":"parcel"}`, key...), 422, fleet.EKEYREUSED)

	// Secrets shown once are not kept by any cache; other answers need not say so.
	for _, tc := range []struct{ name, method, path, body string }{
		{"device creation", "POST", "/api/v1/devices", `{"id":"oak-9","kind":"fridge","site":"oak","doors":2}`},
		{"secret rotation", "POST", "/api/v1/devices/oak-9/rotate-secret", ""},
		{"token creation", "POST", "/api/v1/tokens", `{"name":"new","role":"viewer"}`},
	} {
		a := call(t, tc.method, base+tc.path, admin, tc.body)
		answers = append(answers, a)
		if a.code/100 != 2 || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d, Cache-Control %q; want no-store", tc.name, a.code, a.header.Get("Cache-Control"))
		}
	}
	answers = append(answers, call(t, "GET", base+"/api/v1/devices", admin, ""), call(t, "GET", base+"/api/v1/devices", "", ""),
		call(t, "GET", base+"/api/v1/nope", admin, ""), call(t, "DELETE", base+"/api/v1/devices/oak-9", admin, ""), call(t, "GET", base+"/readyz", "", ""))
	for _, a := range answers {
		if a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("answer %d %.60s without X-Content-Type-Options: nosniff", a.code, a.body)
		}
	}
}

// A flood of bad tokens makes a few audit entries that count every attempt, and a path of any
// length is recorded, cut short.
func TestFailedLoginsBatched(t *testing.T) {
	reg := openRegistry(t)
	base := "http://" + reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{}})

	const attempts = 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < attempts; i += 8 {
				req, _ := http.NewRequest("GET", base+"/api/v1/devices", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer lh_%016x_forged", i))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Errorf("forged token: %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()

	// From another address, an 8 KB path.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	longPath := "/api/v1/devices/" + strings.Repeat("a", 8<<10)
	req, _ := http.NewRequest("GET", base+longPath, nil)
	req.Header.Set("Authorization", "Bearer lh_0000000000000000_forged")
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	other.CloseIdleConnections()
	if resp.StatusCode != 401 {
		t.Fatalf("long path with a forged token: %d", resp.StatusCode)
	}

	entries := reg.loginFailures(t)
	byHost := map[string]int{}
	for _, e := range entries {
		byHost[fmt.Sprint(e.Detail["remote"])] += failureCount(t, e)
		if e.Actor != "api" || e.Detail["reason"] != "invalid_token" {
			t.Errorf("entry %+v", e)
		}
		if e.Detail["remote"] != "127.0.0.2" {
			continue
		}
		path, _ := e.Detail["path"].(string)
		if !strings.HasPrefix(path, "/api/v1/devices/aaaa") || len(path) > 512 {
			t.Errorf("the long path was recorded as %d bytes: %.80s", len(path), path)
		}
	}
	// One entry per address and 10 s window: the flood may straddle a window's end.
	if len(entries) > 4 || byHost["127.0.0.1"] != attempts || byHost["127.0.0.2"] != 1 {
		t.Fatalf("%d audit entries counting %v failed logins by address; want a few, counting %d and 1", len(entries), byHost, attempts)
	}
}
