package simctl

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// A resident's typo is a real wrong code: well-formed, one digit off, never the right one.
func TestTypo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := Parcels{MeanWait: time.Minute, WrongShare: 1}
	for range 1000 {
		code := fmt.Sprintf("%0*d", wire.CodeDigits, rng.IntN(100_000_000))
		r := p.draw(rng)
		typed := r.typo(code)
		diff := 0
		for i := range code {
			if code[i] != typed[i] {
				diff++
			}
		}
		if !wire.ValidCode(typed) || diff != 1 {
			t.Fatalf("typo of %s: %s", code, typed)
		}
	}
}

// The stories drawn follow the shares, and the same seed tells the same stories.
func TestDrawShares(t *testing.T) {
	p := Parcels{MeanWait: time.Minute, WrongShare: 0.2, LateShare: 0.1, NeverShare: 0.3, OfflineShare: 0.4, Outage: time.Minute}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	var never, late, wrong, offline int
	var wait time.Duration
	a, b := rand.New(rand.NewPCG(7, 2)), rand.New(rand.NewPCG(7, 2))
	for range n {
		r := p.draw(a)
		if r != p.draw(b) {
			t.Fatal("one seed, two stories")
		}
		if r.never {
			never++
		}
		if r.late {
			late++
		}
		if r.typoAt != 0 {
			wrong++
		}
		if r.offline {
			offline++
		}
		wait += r.wait
	}
	for name, c := range map[string]struct {
		got  int
		want float64
	}{"never": {never, 0.3}, "late": {late, 0.1}, "wrong": {wrong, 0.2}, "offline": {offline, 0.4}} {
		if share := float64(c.got) / n; share < c.want-0.02 || share > c.want+0.02 {
			t.Errorf("%s: %.3f of residents, want %.2f", name, share, c.want)
		}
	}
	if mean := wait / n; mean < 55*time.Second || mean > 65*time.Second {
		t.Errorf("mean wait %s, want about a minute", mean)
	}
}

func TestParcelsValidate(t *testing.T) {
	ok := Parcels{PerUnitHour: 6, MeanWait: time.Minute, WrongShare: 0.1, LateShare: 0.5, NeverShare: 0.5}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*Parcels){
		"negative rate":      func(p *Parcels) { p.PerUnitHour = -1 },
		"no wait":            func(p *Parcels) { p.MeanWait = 0 },
		"wrong share > 1":    func(p *Parcels) { p.WrongShare = 1.1 },
		"late+never > 1":     func(p *Parcels) { p.LateShare = 0.6 },
		"offline, no outage": func(p *Parcels) { p.OfflineShare = 0.1 },
	} {
		p := ok
		bad(&p)
		if p.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
