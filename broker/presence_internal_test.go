package broker

import "testing"

func TestTopicMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"lockers/+/status", "lockers/a/status", true},
		{"lockers/a/status", "lockers/a/status", true},
		{"lockers/b/status", "lockers/a/status", false},
		{"lockers/+/result", "lockers/a/status", false},
		{"lockers/#", "lockers/a/status", true},
		{"lockers/a/#", "lockers/a/status", true},
		{"lockers/a/status/#", "lockers/a/status", true},
		{"#", "lockers/a/status", true},
		{"+/+/+", "lockers/a/status", true},
		{"+/+", "lockers/a/status", false},
		{"lockers/+/status/+", "lockers/a/status", false},
		{"lockers/+", "lockers/a/status", false},
		{"$share/hubs/lockers/+/status", "lockers/a/status", true},
		{"$share/hubs/lockers/+/result", "lockers/a/status", false},
	} {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
