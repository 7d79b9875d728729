// Package panel shows on the hub's dashboard the faults a simulator injected, beside the alerts
// they raise: `lockerhub demo` runs the hub and the simulator in one process and adds the panel
// to the hub (Addon) only there. A hub started with `lockerhub serve` has no trace of it: no
// endpoint, no script, no markup.
package panel

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/http/web"
)

//go:embed static
var static embed.FS

// Name is where the panel lives on the hub: its files under /demo/, its data at GET /api/v1/demo.
const Name = "demo"

// keepCleared is how many cleared faults the panel keeps showing: the alerts they raised stay
// open a little while after them.
const keepCleared = 8

// Fault is one fault in the panel: active while Cleared is nil.
type Fault struct {
	Unit     string     `json:"unit"`
	Site     string     `json:"site,omitempty"`
	Fault    string     `json:"fault"`
	Door     int        `json:"door,omitempty"`
	OnDemand bool       `json:"on_demand"`
	Started  time.Time  `json:"started"`
	Until    *time.Time `json:"until,omitempty"` // when a random fault is to clear
	Cleared  *time.Time `json:"cleared,omitempty"`
}

// Answer is the JSON of GET /api/v1/demo: active faults, oldest first, then the latest cleared
// ones, latest first.
type Answer struct {
	Active  []Fault `json:"active"`
	Cleared []Fault `json:"cleared"`
}

// Log follows the faults of a simulated fleet (give Record to simctl.Fleet.Observe). It is safe
// for concurrent use.
type Log struct {
	mu      sync.Mutex
	active  []Fault // oldest first
	cleared []Fault // latest first, at most keepCleared
}

// Record takes a fault starting or clearing. A fault set again while active stays one fault.
func (l *Log) Record(e simctl.FaultEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.IndexFunc(l.active, func(f Fault) bool { return f.Unit == e.Unit && f.Fault == string(e.Fault) && f.Door == e.Door })
	switch {
	case e.On && i < 0:
		f := Fault{Unit: e.Unit, Site: e.Site, Fault: string(e.Fault), Door: e.Door, OnDemand: e.OnDemand, Started: e.At}
		if e.Lasts > 0 {
			until := e.At.Add(e.Lasts)
			f.Until = &until
		}
		l.active = append(l.active, f)
	case e.On:
		l.active[i].OnDemand, l.active[i].Until = e.OnDemand, nil
	case i >= 0:
		f := l.active[i]
		f.Cleared = &e.At
		l.active = slices.Delete(l.active, i, i+1)
		l.cleared = slices.Insert(l.cleared, 0, f)
		l.cleared = l.cleared[:min(len(l.cleared), keepCleared)]
	}
}

// Answer returns the faults of the units at sites tok may see.
func (l *Log) Answer(tok *fleet.Token) Answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	hidden := func(f Fault) bool { return !tok.InScope(f.Site) }
	// Copies, never nil: the answer is encoded after the lock is released, and as [] rather than null.
	return Answer{Active: slices.DeleteFunc(append([]Fault{}, l.active...), hidden),
		Cleared: slices.DeleteFunc(append([]Fault{}, l.cleared...), hidden)}
}

// Addon is the panel for the hub's HTTP server (lhhttp.Options.Addons), showing l.
func Addon(l *Log) lhhttp.Addon {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return lhhttp.Addon{
		Addon: web.Addon{Name: Name, Files: files, Scripts: []string{"panel.js"}, Styles: []string{"panel.css"}},
		Get:   func(_ *http.Request, tok *fleet.Token) (any, error) { return l.Answer(tok), nil },
	}
}
