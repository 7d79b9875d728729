package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testmosquitto"
)

// The real hub against hostile clients: a stranger's wrong secrets for a unit's id (sent with
// Debian's mosquitto_pub from another address) never keep the unit out; concurrent connects
// with the unit's credentials leave one live connection; and removing the unit and registering
// its id again elsewhere closes that connection, so that nothing is published as the old unit
// into the new one.
func TestHostileClientsEndToEnd(t *testing.T) {
	t.Parallel()
	pub := testmosquitto.Client(t, "mosquitto_pub")
	environ := env(t.TempDir())
	hub := startHub(t, environ)
	host, port, _ := net.SplitHostPort(hub.mqtt)
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm", "--doors", "4", "--json")
	if code != 0 {
		t.Fatalf("device add: %s", errOut)
	}
	var added struct{ Secret string }
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatal(err)
	}
	publish := func(from, secret string) error {
		payload := fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"doors":[{"door":1,"open":false,"locked":true}]}`, time.Now().UnixMilli())
		cmd := exec.Command(pub, "-A", from, "-h", host, "-p", port, "-i", "bank-1", "-u", "bank-1", "-P", secret,
			"-q", "1", "-t", "lockers/bank-1/telemetry", "-m", payload)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}

	for i := range 30 {
		if err := publish("127.0.0.2", fmt.Sprint("guess-", i)); err == nil {
			t.Fatal("a wrong secret was accepted")
		}
	}
	for range 3 {
		if err := publish("127.0.0.1", added.Secret); err != nil {
			t.Fatalf("the unit is locked out by a stranger's wrong secrets: %v", err)
		}
	}

	// 16 connects at once with the unit's credentials.
	var conns []paho.Client
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).
				SetClientID("bank-1").SetUsername("bank-1").SetPassword(added.Secret).
				SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(false))
			<-start
			if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				t.Cleanup(func() { c.Disconnect(0) })
			}
		})
	}
	close(start)
	wg.Wait()
	live := func() int {
		var n atomic.Int32
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				tok := c.Publish("lockers/bank-1/events", 1, false,
					fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"kind":"door","door":1,"open":false,"locked":true}`, time.Now().UnixMilli()))
				if tok.WaitTimeout(3*time.Second) && tok.Error() == nil && c.IsConnectionOpen() {
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return int(n.Load())
	}
	if n := live(); len(conns) == 0 || n != 1 {
		t.Fatalf("%d of %d accepted connections of one unit are live, want 1", n, len(conns))
	}
	testhub.WaitFor(t, 5*time.Second, "one unit connected in /metrics", func() bool {
		_, m := hub.get(t, "/metrics")
		return strings.Contains(m, "lockerhub_devices_connected 1")
	})

	// The id is removed and registered again at another site: the old connection is gone.
	if _, errOut, code := run(t, environ, "device", "remove", "--id", "bank-1"); code != 0 {
		t.Fatalf("device remove: %s", errOut)
	}
	if _, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4"); code != 0 {
		t.Fatalf("device add again: %s", errOut)
	}
	testhub.WaitFor(t, 5*time.Second, "every connection of the removed unit closed", func() bool {
		for _, c := range conns {
			if c.IsConnectionOpen() {
				return false
			}
		}
		return true
	})
	if n := live(); n != 0 {
		t.Fatalf("%d connections of the removed unit still publish into the new one", n)
	}
}
