package publish

import (
	"log/slog"
	"time"
)

// flapWindow is both how often a connection that keeps dropping is
// reported (one line with a count), and how long a reconnection must hold
// before the connection counts as stable again. A minute: an edge box on
// Wi-Fi can lose its broker several times a minute (issue 23), and a line
// per drop would be most of its log.
const flapWindow = time.Minute

// connLog decides which connection changes are worth a log line, so that a
// broker that is down logs one line per reason (and a reminder every
// remindEvery), and a connection that keeps dropping (flapping Wi-Fi) logs
// a few lines, not one per drop:
//
//   - the first drop: "mqtt connection lost; reconnecting";
//   - why reconnecting fails: once per reason for the whole unstable
//     period (every flap fails the same way), and again every remindEvery;
//   - the first reconnection: "mqtt connected", with how long it took;
//   - further drops and reconnections: counted, and one line a window
//     while they go on ("mqtt connection keeps dropping");
//   - once a reconnection has held for a window after more than one drop:
//     "mqtt connection stable again", with the count.
//
// The run goroutine owns it; it takes the time from the caller, so a test
// can play a day of flaps in a millisecond.
type connLog struct {
	log    *slog.Logger
	broker string
	window time.Duration // flapWindow; shorter in tests

	// The current outage: connection attempts failing in a row.
	failures  int
	downSince time.Time
	// The current unstable period: from the first drop until a
	// reconnection has held for a window. Failure reasons logged in it are
	// not logged again at the next flap.
	drops      int       // drops in the period
	since      time.Time // the first drop
	reported   int       // drops reported so far (the first, and by "keeps dropping")
	reportedAt time.Time
	lastDrop   string    // the last drop's reason
	lastMsg    string    // the last failure reason logged
	lastLog    time.Time // when it was logged
}

// connectFailed records a failed attempt; delay is the wait before the next.
func (c *connLog) connectFailed(now time.Time, msg string, delay time.Duration, outbox int) {
	c.failures++
	if c.downSince.IsZero() {
		c.downSince = now
	}
	if msg != c.lastMsg || now.Sub(c.lastLog) >= remindEvery {
		c.log.Warn("mqtt cannot connect; retrying with backoff", "broker", c.broker,
			"error", msg, "attempts", c.failures, "retry_in", delay, "outbox", outbox)
		c.lastMsg, c.lastLog = msg, now
	}
}

// connected records a session set up; it reports whether the connection
// is on probation (an unstable period goes on): stable must then be called
// once it has held for window.
func (c *connLog) connected(now time.Time, clientID string, outbox int) (probation bool) {
	if c.drops <= 1 { // at start, after an outage, or after the first drop: worth a line
		attrs := []any{"broker", c.broker, "client_id", clientID, "outbox", outbox}
		if c.failures > 0 || c.drops == 1 {
			attrs = append(attrs, "after_attempts", c.failures, "down_for", now.Sub(c.downSince).Round(time.Second))
		}
		c.log.Info("mqtt connected", attrs...)
	}
	if c.drops == 0 {
		c.lastMsg = "" // an outage at start, over: its reason may be logged again
	}
	c.failures, c.downSince = 0, time.Time{}
	return c.drops > 0
}

// lost records a session that broke.
func (c *connLog) lost(now time.Time, msg string, outbox int) {
	c.drops++
	c.downSince, c.lastDrop = now, msg
	switch {
	case c.drops == 1:
		c.since, c.reported, c.reportedAt = now, 1, now
		c.log.Warn("mqtt connection lost; reconnecting", "broker", c.broker, "error", msg, "outbox", outbox)
	case now.Sub(c.reportedAt) >= c.window:
		c.log.Warn("mqtt connection keeps dropping; reconnecting each time (logged once a minute while it does)",
			"broker", c.broker, "drops", c.drops-c.reported, "over", now.Sub(c.reportedAt).Round(time.Second),
			"drops_since_first", c.drops, "first", c.since.Format(time.RFC3339), "error", msg, "outbox", outbox)
		c.reported, c.reportedAt = c.drops, now
	}
}

// stable records that a reconnection has held for window: the unstable
// period is over.
func (c *connLog) stable(now time.Time) {
	if c.drops > 1 {
		c.log.Info("mqtt connection stable again", "broker", c.broker, "reconnected_after_drops", c.drops,
			"over", now.Sub(c.since).Round(time.Second), "last_error", c.lastDrop)
	}
	c.drops, c.reported, c.since, c.reportedAt, c.lastDrop, c.lastMsg = 0, 0, time.Time{}, time.Time{}, "", ""
}

// closing reports, when the sink stops in an unstable period, the drops
// not yet reported.
func (c *connLog) closing(now time.Time) {
	if c.drops > c.reported {
		c.log.Info("mqtt connection was still dropping when the sink stopped", "broker", c.broker,
			"drops", c.drops-c.reported, "over", now.Sub(c.reportedAt).Round(time.Second), "drops_since_first", c.drops)
	}
}
