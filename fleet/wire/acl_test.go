package wire

import "testing"

func TestACL(t *testing.T) {
	for _, tc := range []struct {
		topic    string
		pub, sub bool
	}{
		{topic: "lockers/a/telemetry", pub: true},
		{topic: "lockers/a/events", pub: true},
		{topic: "lockers/a/status", pub: true},
		{topic: "lockers/a/result", pub: true},
		{topic: "lockers/a/cmd/request", sub: true},
		{topic: "lockers/a/cmd/codes", sub: true},
		{topic: "lockers/b/cmd/codes"},
		{topic: "lockers/a/cmd/#", sub: true},
		{topic: "lockers/a/cmd/+", sub: true},
		{topic: "lockers/a/cmd/"},
		{topic: "lockers/a/cmd"},
		{topic: "lockers/a/#"},
		{topic: "lockers/a/telemetry/extra"},
		{topic: "lockers/a/unknown"},
		{topic: "lockers/b/telemetry"},
		{topic: "lockers/b/cmd/request"},
		{topic: "lockers/b/cmd/#"},
		{topic: "lockers/ab/cmd/#"},
		{topic: "lockers/+/cmd/#"},
		{topic: "lockers/+/telemetry"},
		{topic: "+/a/cmd/#"},
		{topic: "#"},
		{topic: "$SYS/#"},
		{topic: "$share/g/lockers/a/cmd/#"},
		{topic: "LOCKERS/a/cmd/#"},
		{topic: ""},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			if got := DeviceMayPublish("a", tc.topic); got != tc.pub {
				t.Errorf("DeviceMayPublish = %v, want %v", got, tc.pub)
			}
			if got := DeviceMaySubscribe("a", tc.topic); got != tc.sub {
				t.Errorf("DeviceMaySubscribe = %v, want %v", got, tc.sub)
			}
		})
	}
}
