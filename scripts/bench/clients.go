package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// publisherOptions are the sessions of the ingest load: clean, since a publisher's session
// holds nothing the hub needs to keep.
func publisherOptions(broker string, u testbed.Unit) *paho.ClientOptions {
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(u.ID).SetUsername(u.ID).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(30 * time.Second).SetWriteTimeout(30 * time.Second)
	if u.Secret != "" {
		o.SetPassword(u.Secret)
	}
	return o
}

// unitOptions is a simulated unit's session, set up like the edge agent's (newClient in
// edge-agent/agent/agent.go), because what the hub keeps per connected unit is what the
// connections scenario measures: MQTT 3.1.1, a persistent session (the hub keeps the
// subscription and queues commands while the unit is away), the offline status as will, and
// onConnect subscribing to the unit's commands. Unlike the agent it does not reconnect: a
// dropped unit is a failure to report, not to hide. A nil handler ignores commands.
func unitOptions(broker string, u testbed.Unit, connectTimeout time.Duration, handler paho.MessageHandler) (*paho.ClientOptions, error) {
	will, err := wire.Marshal(wire.Status{V: wire.Version, TS: time.Now().UnixMilli(), Online: false, Agent: "bench"})
	if err != nil {
		return nil, err
	}
	if handler == nil {
		handler = func(paho.Client, paho.Message) {}
	}
	return paho.NewClientOptions().AddBroker(broker).SetClientID(u.ID).SetUsername(u.ID).SetPassword(u.Secret).
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).
		SetKeepAlive(60*time.Second).SetConnectTimeout(connectTimeout).SetWriteTimeout(30*time.Second).
		SetBinaryWill(wire.Topic(u.ID, wire.ChannelStatus), will, 1, true).
		SetOnConnectHandler(func(c paho.Client) { c.Subscribe(wire.CommandFilter(u.ID), 1, handler) }), nil
}

// connected is the outcome of connecting a set of units.
type connected struct {
	clients   []paho.Client   // by unit; nil where the connect failed
	errs      []error         // by unit
	latencies []time.Duration // CONNECT until CONNACK (TCP handshake included) of those that connected, sorted
	start     time.Time       // first connect attempt
	lastAck   time.Time       // last CONNACK
}

// firstErr returns the first unit's failure, naming the unit, or nil.
func (c *connected) firstErr(units []testbed.Unit) error {
	for i, err := range c.errs {
		if err != nil {
			return fmt.Errorf("connect %s: %w", units[i].ID, err)
		}
	}
	return nil
}

// failures counts the units that did not connect.
func (c *connected) failures() int {
	n := 0
	for _, err := range c.errs {
		if err != nil {
			n++
		}
	}
	return n
}

func (c *connected) disconnect() {
	var wg sync.WaitGroup
	for _, cl := range c.clients {
		if cl != nil {
			wg.Go(func() { cl.Disconnect(100) })
		}
	}
	wg.Wait()
}

// connectUnits connects every unit, concurrency at a time (len(units) for all at once), with
// the options opts makes, and reports progress every two seconds when progress is not nil.
func connectUnits(ctx context.Context, units []testbed.Unit, concurrency int, opts func(testbed.Unit) (*paho.ClientOptions, error), progress io.Writer) *connected {
	return connectUnitsIn(ctx, units, 1, concurrency, func(_ int, u testbed.Unit) (*paho.ClientOptions, error) { return opts(u) }, progress)
}

// connectUnitsIn is connectUnits with the units dealt round-robin into groups (unit i into
// group i%groups), each group connecting concurrency at a time: one group per source address,
// so that no address has more connects in flight than the hub lets one source hold pending.
// opts is given the unit's group.
func connectUnitsIn(ctx context.Context, units []testbed.Unit, groups, concurrency int, opts func(group int, u testbed.Unit) (*paho.ClientOptions, error), progress io.Writer) *connected {
	c := &connected{clients: make([]paho.Client, len(units)), errs: make([]error, len(units)), start: time.Now()}
	lat := make([]time.Duration, len(units))
	acked := make([]time.Time, len(units))
	var done atomic.Int64
	if progress != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					fmt.Fprintf(progress, "  %d/%d connects answered after %s\n", done.Load(), len(units), time.Since(c.start).Round(100*time.Millisecond))
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for g := range groups {
		wg.Go(func() {
			sem := make(chan struct{}, concurrency)
			var unitsWG sync.WaitGroup
			for i := g; i < len(units); i += groups {
				sem <- struct{}{}
				unitsWG.Go(func() {
					defer func() { <-sem; done.Add(1) }()
					o, err := opts(g, units[i])
					if err != nil {
						c.errs[i] = err
						return
					}
					cl := paho.NewClient(o)
					t0 := time.Now()
					tok := cl.Connect()
					select {
					case <-tok.Done():
						c.errs[i] = tok.Error()
					case <-ctx.Done():
						c.errs[i] = ctx.Err()
					}
					if c.errs[i] == nil {
						acked[i] = time.Now()
						lat[i] = acked[i].Sub(t0)
						c.clients[i] = cl
					}
				})
			}
			unitsWG.Wait()
		})
	}
	wg.Wait()
	for i, err := range c.errs {
		if err == nil {
			c.latencies = append(c.latencies, lat[i])
			if acked[i].After(c.lastAck) {
				c.lastAck = acked[i]
			}
		}
	}
	slices.Sort(c.latencies)
	return c
}
