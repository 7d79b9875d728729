package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// influxOutage stops the suite's InfluxDB for -outage while the units publish, starts it again
// and checks that the spool absorbed the outage: everything acknowledged arrives once.
func (s *suite) influxOutage(ctx context.Context, r *caseResult) error {
	h, units, db, dir, err := s.setup(ctx, r.Name, s.o.units)
	if err != nil {
		return err
	}
	defer h.Stop()
	f, err := s.runFleet(ctx, r, h, units, dir)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		f.stop()
		return err
	}
	s.logf("%s: stopping InfluxDB for %s", r.Name, s.o.outage)
	if err := s.influx.Stop(); err != nil {
		f.stop()
		return err
	}
	peak, err := s.watchBacklog(ctx, r, h, s.o.outage)
	// Start InfluxDB again whatever happened: the next cases need it.
	startErr := s.influx.Start(ctx)
	if err != nil || startErr != nil {
		f.stop()
		if err == nil {
			err = startErr
		}
		return err
	}
	r.check("spool absorbed the outage", peak > 0, "peak backlog %.0f messages while InfluxDB was down", peak)
	atRestart, _ := h.spoolBacklog()
	s.logf("%s: InfluxDB back; load for another %s", r.Name, s.o.lead)
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		f.stop()
		return err
	}
	atStop, _ := h.spoolBacklog()
	code, body := readyz(h.HTTP)
	r.note("spool backlog when InfluxDB answered again: %.0f messages; %s later, when the load stopped: %.0f, with /readyz HTTP %d %s",
		atRestart, s.o.lead, atStop, code, body)
	if err := s.finishFleet(ctx, r, h, f, db); err != nil {
		return err
	}
	// After the drain: while InfluxDB was away the hub rightly says it is not ready.
	hubAliveCheck(r, h)
	if m := r.HubMetrics; m != nil {
		r.note("the hub counted %.0f duplicate messages (resent after a lost acknowledgement, stored once) and retried %.0f batch writes",
			m["lockerhub_telemetry_duplicates_total"], m["lockerhub_telemetry_write_retries_total"])
	}
	return nil
}

// watchBacklog samples the spool's backlog for d, logging it every 10 s, and returns its peak.
func (s *suite) watchBacklog(ctx context.Context, r *caseResult, h *hub, d time.Duration) (float64, error) {
	peak := 0.0
	end := time.Now().Add(d)
	lastLog := time.Now()
	for time.Now().Before(end) {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return peak, err
		}
		v, err := h.spoolBacklog()
		if err != nil {
			continue // the hub may be busy; the next scrape will do
		}
		peak = max(peak, v)
		if time.Since(lastLog) >= 10*time.Second {
			s.logf("%s: spool backlog %.0f messages, %s to go", r.Name, v, time.Until(end).Round(time.Second))
			lastLog = time.Now()
		}
	}
	return peak, nil
}

// hubAliveCheck is the check every case makes at its end: the hub process still runs and
// answers /readyz with 200.
func hubAliveCheck(r *caseResult, h *hub) {
	code, body := readyz(h.HTTP)
	r.check("hub stayed up", h.alive() && code == http.StatusOK, "process alive: %v, /readyz: HTTP %d %s", h.alive(), code, body)
}

// readyz returns the status and body of the hub's /readyz (0 if it does not answer).
func readyz(addr string) (int, string) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(body))
}
