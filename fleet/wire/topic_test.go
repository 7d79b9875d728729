package wire

import (
	"strings"
	"testing"
)

func TestValidDeviceID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"0", true},
		{"bank-042", true},
		{"fridge-7-", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{"-a", false},
		{"A", false},
		{"bank-A", false},
		{"a_b", false},
		{"a.b", false},
		{"a b", false},
		{"a/b", false},
		{"+", false},
		{"#", false},
		{"é", false},
		{"a\x00", false},
		{strings.Repeat("a", 64), false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if got := ValidDeviceID(tc.id); got != tc.want {
				t.Errorf("ValidDeviceID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestTopicRoundTrip(t *testing.T) {
	for _, ch := range []Channel{ChannelTelemetry, ChannelEvents, ChannelStatus, ChannelResult, ChannelCommand, ChannelCodes} {
		topic := Topic("bank-042", ch)
		id, got, ok := ParseTopic(topic)
		if !ok || id != "bank-042" || got != ch {
			t.Errorf("ParseTopic(%q) = %q, %q, %v; want bank-042, %q, true", topic, id, got, ok, ch)
		}
	}
}

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		id    string
		ch    Channel
	}{
		{"lockers/a/telemetry", "a", ChannelTelemetry},
		{"lockers/bank-042/events", "bank-042", ChannelEvents},
		{"lockers/a/status", "a", ChannelStatus},
		{"lockers/a/result", "a", ChannelResult},
		{"lockers/a/cmd/request", "a", ChannelCommand},
		{"lockers/a/cmd/codes", "a", ChannelCodes},
		{"lockers/" + strings.Repeat("z", 63) + "/telemetry", strings.Repeat("z", 63), ChannelTelemetry},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			id, ch, ok := ParseTopic(tc.topic)
			if !ok || id != tc.id || ch != tc.ch {
				t.Errorf("ParseTopic(%q) = %q, %q, %v; want %q, %q, true", tc.topic, id, ch, ok, tc.id, tc.ch)
			}
		})
	}
	for _, topic := range []string{
		"",
		"lockers",
		"lockers/",
		"lockers/a",
		"lockers/a/",
		"lockers//telemetry",
		"other/a/telemetry",
		"Lockers/a/telemetry",
		"/lockers/a/telemetry",
		"$SYS/lockers/a/telemetry",
		"lockers/a/telemetry/",
		"lockers/a/telemetry/extra",
		"lockers/a/Telemetry",
		"lockers/a/cmd",
		"lockers/a/cmd/",
		"lockers/a/cmd/request/x",
		"lockers/a/cmd/codes/x",
		"lockers/a/codes",
		"lockers/a/cmd/response",
		"lockers/a/request",
		"lockers/+/telemetry",
		"lockers/#",
		"lockers/a/#",
		"lockers/a/+",
		"lockers/a/cmd/#",
		"lockers/A/telemetry",
		"lockers/Bank-1/telemetry",
		"lockers/-a/telemetry",
		"lockers/a_b/telemetry",
		"lockers/" + strings.Repeat("z", 64) + "/telemetry",
	} {
		t.Run(topic, func(t *testing.T) {
			if id, ch, ok := ParseTopic(topic); ok || id != "" || ch != "" {
				t.Errorf("ParseTopic(%q) = %q, %q, %v; want refused", topic, id, ch, ok)
			}
		})
	}
}

func TestCommandFilter(t *testing.T) {
	if got, want := CommandFilter("bank-042"), "lockers/bank-042/cmd/#"; got != want {
		t.Errorf("CommandFilter = %q, want %q", got, want)
	}
	// The filter must cover the command and code set topics.
	prefix := strings.TrimSuffix(CommandFilter("a"), "#")
	for _, ch := range []Channel{ChannelCommand, ChannelCodes} {
		if !strings.HasPrefix(Topic("a", ch), prefix) {
			t.Errorf("CommandFilter(a) does not cover %q", Topic("a", ch))
		}
	}
}

func TestDevicePublishes(t *testing.T) {
	for ch, want := range map[Channel]bool{
		ChannelTelemetry: true,
		ChannelEvents:    true,
		ChannelStatus:    true,
		ChannelResult:    true,
		ChannelCommand:   false,
		ChannelCodes:     false,
		"cmd/response":   false,
		"":               false,
	} {
		if got := DevicePublishes(ch); got != want {
			t.Errorf("DevicePublishes(%q) = %v, want %v", ch, got, want)
		}
	}
}
