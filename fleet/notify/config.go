package notify

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Defaults, applied by New to the settings left at zero.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultMaxAttempts    = 6
	DefaultResendInterval = time.Minute
)

// MinSecretLen is the shortest webhook secret accepted, in bytes.
const MinSecretLen = 16

// Config is the notify section of the alert configuration: where alert lifecycle events go.
// Every setting left at zero takes its default when New builds the senders, so a zero Config
// is valid and sends nothing.
type Config struct {
	Webhooks     []WebhookConfig      `mapstructure:"webhooks"`
	Alertmanager []AlertmanagerConfig `mapstructure:"alertmanager"`
}

// WebhookConfig is one generic webhook receiver.
type WebhookConfig struct {
	// Name labels the sender in metrics and logs; default "webhook-<index>". Unique across
	// webhooks and Alertmanagers.
	Name string `mapstructure:"name"`
	// URL is where events are POSTed: an absolute http or https URL.
	URL string `mapstructure:"url"`
	// Secret is the HMAC-SHA256 key the requests are signed with; at least MinSecretLen bytes.
	Secret string `mapstructure:"secret"`
	// Severities restricts the events sent to alerts of these severities; empty sends all.
	Severities []fleet.Severity `mapstructure:"severities"`
	// Timeout bounds one attempt; default DefaultTimeout.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxAttempts is how often an event is tried before it is dead-lettered; default
	// DefaultMaxAttempts.
	MaxAttempts int `mapstructure:"max_attempts"`
}

// AlertmanagerConfig is one Prometheus Alertmanager, reached through its v2 API.
type AlertmanagerConfig struct {
	// Name labels the sender in metrics and logs; default "alertmanager-<index>".
	Name string `mapstructure:"name"`
	// URL is Alertmanager's base URL, such as http://127.0.0.1:9093 (with its path prefix if
	// it has one); alerts are POSTed to URL/api/v2/alerts.
	URL        string           `mapstructure:"url"`
	Severities []fleet.Severity `mapstructure:"severities"`
	Timeout    time.Duration    `mapstructure:"timeout"`
	// MaxAttempts applies to events and to each re-send alike.
	MaxAttempts int `mapstructure:"max_attempts"`
	// ResendInterval is how often every open alert is posted again; default
	// DefaultResendInterval. It must stay well below Alertmanager's resolve_timeout (5m by
	// default), after which Alertmanager resolves an alert that was not posted again.
	ResendInterval time.Duration `mapstructure:"resend_interval"`
}

// Validate reports the first bad setting, naming its key (notify.webhooks[0].url, ...).
func (c Config) Validate() error {
	names := make(map[string]string) // sender name -> key of the sender that has it
	checkName := func(key, name string) error {
		if other, ok := names[name]; ok {
			return fmt.Errorf("%s.name: %q is also the name of %s", key, name, other)
		}
		names[name] = key
		return nil
	}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("notify.webhooks[%d]", i)
		if err := checkName(key, webhookName(i, w.Name)); err != nil {
			return err
		}
		if err := checkURL(key, w.URL); err != nil {
			return err
		}
		if len(w.Secret) < MinSecretLen {
			return fmt.Errorf("%s.secret: must be at least %d bytes, has %d", key, MinSecretLen, len(w.Secret))
		}
		if err := checkCommon(key, w.Severities, w.Timeout, w.MaxAttempts); err != nil {
			return err
		}
	}
	for i, a := range c.Alertmanager {
		key := fmt.Sprintf("notify.alertmanager[%d]", i)
		if err := checkName(key, alertmanagerName(i, a.Name)); err != nil {
			return err
		}
		if err := checkURL(key, a.URL); err != nil {
			return err
		}
		if err := checkCommon(key, a.Severities, a.Timeout, a.MaxAttempts); err != nil {
			return err
		}
		if a.ResendInterval < 0 {
			return fmt.Errorf("%s.resend_interval: %s must not be negative", key, a.ResendInterval)
		}
	}
	return nil
}

func checkURL(key, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s.url: must be set", key)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s.url: invalid URL %q: want an absolute http(s)://host/... URL", key, raw)
	}
	return nil
}

func checkCommon(key string, severities []fleet.Severity, timeout time.Duration, maxAttempts int) error {
	for i, s := range severities {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%s.severities[%d]: %w", key, i, err)
		}
	}
	if timeout < 0 {
		return fmt.Errorf("%s.timeout: %s must not be negative", key, timeout)
	}
	if maxAttempts < 0 {
		return fmt.Errorf("%s.max_attempts: %d must not be negative", key, maxAttempts)
	}
	return nil
}

func webhookName(i int, name string) string {
	if name == "" {
		return "webhook-" + strconv.Itoa(i)
	}
	return name
}

func alertmanagerName(i int, name string) string {
	if name == "" {
		return "alertmanager-" + strconv.Itoa(i)
	}
	return name
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
