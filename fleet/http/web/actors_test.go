package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
)

// Who acted reads as the token's name the record kept (the hub keeps it after the token is
// revoked, as token t9 is here), with the token's id on hover; the hub's own actions read as
// the hub's, and a record from before names were kept shows the id.
func TestDashboardActorNames(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	ago := func(d time.Duration) time.Time { return time.Now().Add(-d).UTC() }
	api.alerts["open"] = []map[string]any{{"id": 9, "rule": "door-ajar", "severity": "minor", "device": "fridge-1", "site": "oak", "door": 2,
		"state": "acknowledged", "summary": "door 2 open", "fired_at": ago(time.Hour),
		"acked_by": "token:t9", "acked_by_name": "Ana, night desk", "acked_at": ago(30 * time.Minute), "ack_note": "on my way"}}
	api.alerts["resolved"] = []map[string]any{{"id": 5, "rule": "device-offline", "severity": "major", "device": "fridge-1", "site": "oak",
		"state": "resolved", "summary": "offline", "fired_at": ago(3 * time.Hour), "resolved_by": "hub", "resolved_at": ago(2 * time.Hour)}}
	api.commands = []map[string]any{
		{"id": "c2", "device": "fridge-1", "type": "unlock", "door": 1, "reason": "courier", "actor": "token:t9", "actor_name": "Ana, night desk",
			"status": "succeeded", "outcome": "opened", "created_at": ago(time.Minute), "completed_at": ago(time.Minute)},
		{"id": "c1", "device": "fridge-1", "type": "lock", "door": 1, "reason": "left open", "actor": "token:t0",
			"status": "succeeded", "created_at": ago(time.Hour), "completed_at": ago(time.Hour)},
	}
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)
	b.SignIn(url, viewerToken)

	b.Do("the alerts page", chromedp.Navigate(url+"#/alerts"))
	b.Wait("the acknowledged alert", `document.querySelector('tr[data-alert-id="9"] .actor')`)
	if got := actors(b, `tr[data-alert-id="9"]`); got != "Ana, night desk|token:t9" {
		t.Errorf("acknowledged by %q, want Ana, night desk with token:t9 on hover", got)
	}

	b.Do("the unit page", chromedp.Navigate(url+"#/unit/fridge-1"))
	b.Wait("the commands and the resolved alert", `document.querySelectorAll('table.commands .actor').length === 2 && document.querySelector('tr[data-alert-id="5"] .actor')`)
	if got := actors(b, `table.commands`); got != "Ana, night desk|token:t9 token:t0|token:t0" {
		t.Errorf("commands by %q, want Ana's by name and the older one by id", got)
	}
	if got := actors(b, `tr[data-alert-id="5"]`); got != "the hub|hub" {
		t.Errorf("resolved by %q, want the hub", got)
	}
}

// actors is the text and title of each actor under the element that sel selects: "text|title",
// space-separated.
func actors(b *webtest.Browser, sel string) string {
	return webtest.Eval[string](b, `[...document.querySelector('`+sel+`').querySelectorAll('.actor')].map((e) => e.textContent + '|' + e.title).join(' ')`)
}
