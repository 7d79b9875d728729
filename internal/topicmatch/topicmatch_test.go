package topicmatch

import "testing"

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"lockers/a/telemetry", "lockers/a/telemetry", true},
		{"lockers/+/telemetry", "lockers/a/telemetry", true},
		{"lockers/+/telemetry", "lockers/a/b/telemetry", false},
		{"lockers/#", "lockers", true},
		{"lockers/#", "lockers/a/cmd/request", true},
		{"lockers/a/cmd/#", "lockers/b/cmd/request", false},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"lockers/a", "lockers/a/telemetry", false},
	} {
		if got := Matches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
