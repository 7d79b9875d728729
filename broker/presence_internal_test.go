package broker

import "testing"

// Shared subscriptions match as their filter; the rest is package topicmatch's.
func TestTopicMatchesSharedSubscriptions(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"lockers/+/status", "lockers/a/status", true},
		{"$share/hubs/lockers/+/status", "lockers/a/status", true},
		{"$share/hubs/lockers/#", "lockers/a/status", true},
		{"$share/hubs/lockers/+/result", "lockers/a/status", false},
		{"$share/hubs", "lockers/a/status", false},
	} {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
