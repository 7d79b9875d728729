package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

const testSecret = "0123456789abcdef-test"

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{
			Webhooks: []WebhookConfig{{Name: "ops", URL: "https://hooks.example.com/lockerhub", Secret: testSecret,
				Severities: []fleet.Severity{fleet.SeverityCritical}, Timeout: time.Second, MaxAttempts: 3}},
			Alertmanager: []AlertmanagerConfig{{URL: "http://127.0.0.1:9093", ResendInterval: 30 * time.Second}},
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(c *Config)
		wantErr string // "" for valid
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "empty", edit: func(c *Config) { *c = Config{} }},
		{name: "zero settings take defaults", edit: func(c *Config) {
			c.Webhooks[0] = WebhookConfig{URL: "http://h/", Secret: testSecret}
		}},
		{name: "missing webhook url", edit: func(c *Config) { c.Webhooks[0].URL = "" }, wantErr: "notify.webhooks[0].url: must be set"},
		{name: "bad scheme", edit: func(c *Config) { c.Webhooks[0].URL = "ftp://hooks.example.com/" }, wantErr: "notify.webhooks[0].url"},
		{name: "relative url", edit: func(c *Config) { c.Alertmanager[0].URL = "/api" }, wantErr: "notify.alertmanager[0].url"},
		{name: "missing alertmanager url", edit: func(c *Config) { c.Alertmanager[0].URL = "" }, wantErr: "notify.alertmanager[0].url: must be set"},
		{name: "missing secret", edit: func(c *Config) { c.Webhooks[0].Secret = "" }, wantErr: "notify.webhooks[0].secret"},
		{name: "short secret", edit: func(c *Config) { c.Webhooks[0].Secret = "0123456789abcde" }, wantErr: "notify.webhooks[0].secret: must be at least 16 bytes"},
		{name: "unknown webhook severity", edit: func(c *Config) {
			c.Webhooks[0].Severities = []fleet.Severity{fleet.SeverityMajor, "urgent"}
		}, wantErr: `notify.webhooks[0].severities[1]: unknown severity "urgent"`},
		{name: "unknown alertmanager severity", edit: func(c *Config) {
			c.Alertmanager[0].Severities = []fleet.Severity{"Critical"}
		}, wantErr: "notify.alertmanager[0].severities[0]"},
		{name: "negative webhook timeout", edit: func(c *Config) { c.Webhooks[0].Timeout = -time.Second }, wantErr: "notify.webhooks[0].timeout"},
		{name: "negative alertmanager timeout", edit: func(c *Config) { c.Alertmanager[0].Timeout = -1 }, wantErr: "notify.alertmanager[0].timeout"},
		{name: "negative max attempts", edit: func(c *Config) { c.Webhooks[0].MaxAttempts = -1 }, wantErr: "notify.webhooks[0].max_attempts"},
		{name: "negative resend interval", edit: func(c *Config) { c.Alertmanager[0].ResendInterval = -time.Minute }, wantErr: "notify.alertmanager[0].resend_interval"},
		{name: "name used twice", edit: func(c *Config) { c.Alertmanager[0].Name = "ops" }, wantErr: `notify.alertmanager[0].name: "ops" is also the name of notify.webhooks[0]`},
		{name: "name clashes with a default", edit: func(c *Config) {
			c.Webhooks = append(c.Webhooks, WebhookConfig{URL: "http://h/", Secret: testSecret}, WebhookConfig{Name: "webhook-1", URL: "http://h/", Secret: testSecret})
		}, wantErr: "notify.webhooks[2].name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	n, err := New(Config{
		Webhooks:     []WebhookConfig{{URL: "http://h/", Secret: testSecret}, {Name: "ops", URL: "http://h/", Secret: testSecret, Timeout: time.Second, MaxAttempts: 2}},
		Alertmanager: []AlertmanagerConfig{{URL: "http://am:9093"}},
	}, Options{OpenAlerts: noOpenAlerts})
	if err != nil {
		t.Fatal(err)
	}
	type settings struct {
		name        string
		timeout     time.Duration
		maxAttempts int
		backoff     time.Duration
		resendEvery time.Duration
	}
	want := []settings{
		{"webhook-0", DefaultTimeout, DefaultMaxAttempts, time.Second, 0},
		{"ops", time.Second, 2, time.Second, 0},
		{"alertmanager-0", DefaultTimeout, DefaultMaxAttempts, time.Second, DefaultResendInterval},
	}
	if len(n.senders) != len(want) {
		t.Fatalf("%d senders, want %d", len(n.senders), len(want))
	}
	for i, s := range n.senders {
		if got := (settings{s.name, s.timeout, s.maxAttempts, s.retries.Min, s.resendEvery}); got != want[i] {
			t.Errorf("sender %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		opts    Options
		wantErr string
	}{
		{name: "invalid config", cfg: Config{Webhooks: []WebhookConfig{{URL: "http://h/"}}}, wantErr: "notify.webhooks[0].secret"},
		{name: "alertmanager without open alerts", cfg: Config{Alertmanager: []AlertmanagerConfig{{URL: "http://am:9093"}}}, wantErr: "OpenAlerts"},
		{name: "bad external url", opts: Options{ExternalURL: "hub.example.com"}, wantErr: "external URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
