// Package topicmatch matches MQTT topic filters against topic names (MQTT 3.1.1, 4.7), written
// independently of any broker so that tests check ACLs against the protocol rather than
// against the code under test (the ACL itself is fleet/wire's). The embedded broker also uses
// it to give presence to the hub's own subscribers.
package topicmatch

import "strings"

// Matches reports whether filter matches topic. Wildcards at the first level do not match
// topics starting with '$'.
func Matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i >= len(tp):
			return false
		case level != "+" && level != tp[i]:
			return false
		}
	}
	return len(f) == len(tp)
}
