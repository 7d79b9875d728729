package sqldb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		s := sqldb.NewDeviceService(st.open(t))

		d := &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm-street", Doors: 24,
			Labels: map[string]string{"floor": "lobby"}}
		secret, err := s.CreateDevice(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Enabled || d.CreatedAt.IsZero() {
			t.Fatalf("created device not filled in: %+v", d)
		}
		cred, err := s.DeviceCredential(ctx, "bank-1")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := credential.Verify(cred.SecretHash, secret); !ok || err != nil {
			t.Fatalf("stored hash does not verify the returned secret: %v %v", ok, err)
		}

		if _, err := s.CreateDevice(ctx, &fleet.Device{ID: "bank-1", Kind: fleet.KindFridge, Site: "x", Doors: 1}); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("duplicate id: got %v, want conflict", err)
		}

		// A second handle on the same file sees the device: the CLI and the hub share the database.
		other := sqldb.NewDeviceService(st.open(t))
		got, err := other.FindDeviceByID(ctx, "bank-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Site != "elm-street" || got.Doors != 24 || got.Labels["floor"] != "lobby" || got.Kind != fleet.KindLockerBank {
			t.Fatalf("read back %+v", got)
		}

		newSecret, err := s.RotateSecret(ctx, "bank-1")
		if err != nil {
			t.Fatal(err)
		}
		cred2, _ := s.DeviceCredential(ctx, "bank-1")
		if ok, _ := credential.Verify(cred2.SecretHash, secret); ok {
			t.Fatal("old secret still verifies after rotation")
		}
		if ok, _ := credential.Verify(cred2.SecretHash, newSecret); !ok {
			t.Fatal("new secret does not verify")
		}

		if d, err := s.SetEnabled(ctx, "bank-1", false); err != nil || d.Enabled {
			t.Fatalf("disable: %+v %v", d, err)
		}
		if c, _ := s.DeviceCredential(ctx, "bank-1"); c.Enabled {
			t.Fatal("credential of a disabled device says enabled")
		}
		if err := s.DeleteDevice(ctx, "bank-1"); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"find":   func() error { _, err := s.FindDeviceByID(ctx, "bank-1"); return err }(),
			"rotate": func() error { _, err := s.RotateSecret(ctx, "bank-1"); return err }(),
			"enable": func() error { _, err := s.SetEnabled(ctx, "bank-1", true); return err }(),
			"delete": s.DeleteDevice(ctx, "bank-1"),
			"cred":   func() error { _, err := s.DeviceCredential(ctx, "bank-1"); return err }(),
		} {
			if fleet.ErrorCode(err) != fleet.ENOTFOUND {
				t.Errorf("%s after delete: got %v, want not found", name, err)
			}
		}
	})
}

func TestCreateDeviceInvalid(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		s := sqldb.NewDeviceService(openDB(t, e))
		for _, d := range []fleet.Device{
			{ID: "Bank-1", Kind: fleet.KindFridge, Site: "s", Doors: 1},
			{ID: "-bank", Kind: fleet.KindFridge, Site: "s", Doors: 1},
			{ID: "bank", Kind: "vending", Site: "s", Doors: 1},
			{ID: "bank", Kind: fleet.KindFridge, Site: "", Doors: 1},
			{ID: "bank", Kind: fleet.KindFridge, Site: "s", Doors: 0},
			{ID: "bank", Kind: fleet.KindFridge, Site: "s", Doors: 65},
			{ID: "bank", Kind: fleet.KindFridge, Site: "s", Doors: 1, Labels: map[string]string{"Bad Key": "v"}},
			{ID: "inline", Kind: fleet.KindFridge, Site: "s", Doors: 1}, // the broker's own client id
		} {
			if _, err := s.CreateDevice(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), &d); fleet.ErrorCode(err) != fleet.EINVALID {
				t.Errorf("CreateDevice(%+v) = %v, want invalid", d, err)
			}
		}
	})
}

func TestFindDevicesFilter(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		s := sqldb.NewDeviceService(openDB(t, e))
		for _, d := range []*fleet.Device{
			{ID: "c", Kind: fleet.KindFridge, Site: "north", Doors: 4},
			{ID: "a", Kind: fleet.KindLockerBank, Site: "north", Doors: 12},
			{ID: "b", Kind: fleet.KindLockerBank, Site: "south", Doors: 12},
		} {
			if _, err := s.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SetEnabled(ctx, "b", false); err != nil {
			t.Fatal(err)
		}
		enabled := true
		for _, tc := range []struct {
			name string
			f    fleet.DeviceFilter
			want string
		}{
			{"all ordered by id", fleet.DeviceFilter{}, "abc"},
			{"site", fleet.DeviceFilter{Site: "north"}, "ac"},
			{"kind", fleet.DeviceFilter{Kind: fleet.KindLockerBank}, "ab"},
			{"enabled", fleet.DeviceFilter{Enabled: &enabled}, "ac"},
			{"combined", fleet.DeviceFilter{Site: "north", Kind: fleet.KindFridge}, "c"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ds, err := s.FindDevices(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var got string
				for _, d := range ds {
					got += d.ID
				}
				if got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}
	})
}

func TestWatchRegistrySeesOtherProcessWrites(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx, cancel := context.WithCancel(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}))
		defer cancel()
		st := newStore(t, e)
		hub := st.open(t)
		var changes atomic.Int32
		done := make(chan error)
		go func() { done <- hub.WatchRegistry(ctx, 10*time.Millisecond, func() { changes.Add(1) }) }()

		// The watcher takes its baseline when its goroutine first runs; a write made before that is
		// part of the baseline, so writes go on until one is reported (or 5 s have passed).
		cli := sqldb.NewDeviceService(st.open(t))
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; changes.Load() == 0 && time.Now().Before(deadline); i++ {
			if _, err := cli.CreateDevice(ctx, &fleet.Device{ID: fmt.Sprintf("f-%d", i), Kind: fleet.KindFridge, Site: "s", Doors: 2}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if changes.Load() == 0 {
			t.Fatal("WatchRegistry did not report a commit made through another handle")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// An import is all or nothing: a taken id anywhere in the batch stores none of it.
func TestCreateDevicesAllOrNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		s := sqldb.NewDeviceService(openDB(t, e))
		batch := func(ids ...string) []*fleet.Device {
			var ds []*fleet.Device
			for _, id := range ids {
				ds = append(ds, &fleet.Device{ID: id, Kind: fleet.KindFridge, Site: "oak", Doors: 4})
			}
			return ds
		}
		secrets, err := s.CreateDevices(ctx, batch("f-1", "f-2"))
		if err != nil || len(secrets) != 2 || secrets[0] == secrets[1] {
			t.Fatalf("CreateDevices = %q, %v", secrets, err)
		}
		cred, err := s.DeviceCredential(ctx, "f-2")
		if ok, _ := credential.Verify(cred.SecretHash, secrets[1]); err != nil || !ok {
			t.Fatalf("f-2's secret does not verify: %v", err)
		}
		for _, tc := range []struct {
			ds   []*fleet.Device
			code string
		}{
			{batch("f-3", "f-2", "f-4"), fleet.ECONFLICT},
			{batch("f-5", "f-5"), fleet.ECONFLICT},
			{append(batch("f-6"), &fleet.Device{ID: "f-7", Kind: "oven", Site: "oak", Doors: 1}), fleet.EINVALID},
		} {
			if _, err := s.CreateDevices(ctx, tc.ds); fleet.ErrorCode(err) != tc.code {
				t.Errorf("CreateDevices(%s, ...) = %v, want %s", tc.ds[0].ID, err, tc.code)
			}
		}
		all, err := s.FindDevices(ctx, fleet.DeviceFilter{})
		if err != nil || len(all) != 2 {
			t.Fatalf("after refused imports the registry holds %d devices (%v), want the first 2", len(all), err)
		}
	})
}

// The registry version moves with every change to the registry, and only then: watchers
// reload on it, and a hub revalidates every session when it does.
func TestRegistryVersion(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		s := sqldb.NewDeviceService(st.open(t))
		raw := st.raw(t)
		version := func() int64 {
			var v int64
			if err := raw.QueryRow(`SELECT version FROM registry_version`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		for _, tc := range []struct {
			name  string
			op    func() error
			moves bool
		}{
			{"create", func() error {
				_, err := s.CreateDevice(ctx, &fleet.Device{ID: "f-1", Kind: fleet.KindFridge, Site: "s", Doors: 2})
				return err
			}, true},
			{"import", func() error {
				_, err := s.CreateDevices(ctx, []*fleet.Device{{ID: "f-2", Kind: fleet.KindFridge, Site: "s", Doors: 2}, {ID: "f-3", Kind: fleet.KindFridge, Site: "s", Doors: 2}})
				return err
			}, true},
			{"disable", func() error { _, err := s.SetEnabled(ctx, "f-1", false); return err }, true},
			{"rotate", func() error { _, err := s.RotateSecret(ctx, "f-1"); return err }, true},
			{"delete", func() error { return s.DeleteDevice(ctx, "f-2") }, true},
			{"read", func() error { _, err := s.FindDevices(ctx, fleet.DeviceFilter{}); return err }, false},
			{"disable an unknown device", func() error {
				if _, err := s.SetEnabled(ctx, "nope", false); fleet.ErrorCode(err) != fleet.ENOTFOUND {
					return fmt.Errorf("got %v, want not found", err)
				}
				return nil
			}, false},
			{"refused import", func() error {
				if _, err := s.CreateDevices(ctx, []*fleet.Device{{ID: "f-4", Kind: fleet.KindFridge, Site: "s", Doors: 2}, {ID: "f-1", Kind: fleet.KindFridge, Site: "s", Doors: 2}}); fleet.ErrorCode(err) != fleet.ECONFLICT {
					return fmt.Errorf("got %v, want conflict", err)
				}
				return nil
			}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := version()
				if err := tc.op(); err != nil {
					t.Fatal(err)
				}
				if after := version(); (after != before) != tc.moves {
					t.Fatalf("version %d -> %d; want it to move: %v", before, after, tc.moves)
				}
			})
		}
	})
}
