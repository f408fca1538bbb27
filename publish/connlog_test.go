package publish

import (
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestConnLog plays connection histories on connLog with a made-up clock
// and checks what a user reads in the log: a line per change worth
// knowing, not one per attempt or per drop.
func TestConnLog(t *testing.T) {
	const refused = "cannot reach the broker: dial tcp 127.0.0.1:1883: connect: connection refused"
	const eof = "EOF"
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

	type step struct {
		at   time.Duration
		what string // "fail", "up", "lost", "stable" (the probation timer), "close"
	}
	// flaps is the Wi-Fi: down 2 s (one refused attempt), up 3 s, for d.
	flaps := func(from, d time.Duration) []step {
		var out []step
		for at := from; at < from+d; at += 5 * time.Second {
			out = append(out, step{at, "lost"}, step{at + time.Second, "fail"}, step{at + 2*time.Second + 10*time.Millisecond, "up"})
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
		want  map[string]int // lines per message
	}{
		{"broker down at start, then up",
			[]step{{0, "fail"}, {time.Second, "fail"}, {3 * time.Second, "fail"}, {7 * time.Second, "up"}},
			map[string]int{"mqtt cannot connect; retrying with backoff": 1, "mqtt connected": 1}},
		{"one drop (a broker restart)",
			[]step{{0, "up"}, {time.Minute, "lost"}, {61 * time.Second, "fail"}, {63 * time.Second, "up"}, {123 * time.Second, "stable"}},
			map[string]int{"mqtt connected": 2, "mqtt connection lost; reconnecting": 1, "mqtt cannot connect; retrying with backoff": 1}},
		{"flapping for two minutes, then stable",
			cat([]step{{0, "up"}}, flaps(10*time.Second, 2*time.Minute), []step{{10*time.Second + 2*time.Minute + time.Minute, "stable"}}),
			map[string]int{
				"mqtt connected":                             2, // at start, and the first reconnection
				"mqtt connection lost; reconnecting":         1,
				"mqtt cannot connect; retrying with backoff": 1,
				"mqtt connection keeps dropping; reconnecting each time (logged once a minute while it does)": 1, // a minute after the first drop
				"mqtt connection stable again": 1, // with the count of all 24
			}},
		{"flapping, stable, and a drop again later",
			cat([]step{{0, "up"}}, flaps(10*time.Second, 30*time.Second), []step{{2 * time.Minute, "stable"}},
				[]step{{10 * time.Minute, "lost"}, {10*time.Minute + time.Second, "fail"}, {10*time.Minute + 3*time.Second, "up"}}),
			map[string]int{
				"mqtt connected":                             3,
				"mqtt connection lost; reconnecting":         2,
				"mqtt cannot connect; retrying with backoff": 2, // once per unstable period
				"mqtt connection stable again":               1,
			}},
		{"still flapping when the sink stops",
			cat([]step{{0, "up"}}, flaps(10*time.Second, 90*time.Second), []step{{100 * time.Second, "close"}}),
			map[string]int{
				"mqtt connected":                             2,
				"mqtt connection lost; reconnecting":         1,
				"mqtt cannot connect; retrying with backoff": 1,
				"mqtt connection keeps dropping; reconnecting each time (logged once a minute while it does)": 1,
				"mqtt connection was still dropping when the sink stopped":                                    1,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, rec := testenv.NewLogRecorder(t)
			c := &connLog{log: log, broker: "tcp://127.0.0.1:1883", window: flapWindow}
			probation := false
			drops, dropsWhenStable := 0, 0
			for _, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.what {
				case "fail":
					c.connectFailed(now, refused, time.Second, 3)
				case "up":
					probation = c.connected(now, "siglipd", 3)
				case "lost":
					drops++
					c.lost(now, eof, 3)
				case "stable":
					if !probation {
						t.Fatalf("at %s: stable without probation", s.at)
					}
					c.stable(now)
					probation, dropsWhenStable, drops = false, drops, 0
				case "close":
					c.closing(now)
				}
			}
			got := rec.ByMsg(nil)
			for msg, n := range tt.want {
				if got[msg] != n {
					t.Errorf("%d × %q, want %d", got[msg], msg, n)
				}
			}
			for msg, n := range got {
				if _, ok := tt.want[msg]; !ok {
					t.Errorf("%d × %q, want none", n, msg)
				}
			}
			total := 0
			for _, n := range got {
				total += n
			}
			t.Logf("%d drops, %d log lines", drops+dropsWhenStable, total)
			for _, r := range rec.Records(func(r testenv.LogRecord) bool { return r.Msg == "mqtt connection stable again" }) {
				if r.Attrs["reconnected_after_drops"] != itoa(dropsWhenStable) {
					t.Errorf("stable again after %s drops, want %d: %s", r.Attrs["reconnected_after_drops"], dropsWhenStable, r)
				}
			}
		})
	}
}
