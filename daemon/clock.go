package daemon

import (
	"sync/atomic"
	"time"
)

// clock is the daemon's time. An edge box without a real-time clock boots
// with the time of its last shutdown (or 1970), and its wall clock jumps,
// often by days, when NTP syncs; clocks are also stepped back. So the
// daemon keeps two readings apart:
//
//   - steady time, on which every duration is measured (cooldowns,
//     off_delay, the quiet timeout, and the order of frames): a timeline
//     that starts at the wall time the daemon started and then advances
//     with the monotonic clock only. steady is exact for any time.Now()
//     reading of this process (frame times, ticks): such a reading carries
//     the monotonic clock, which no step moves.
//   - wall time, what users see (event times and ids, the score history,
//     marks, the page): steady time + the offset in force, which changes
//     only when check finds that the wall clock jumped.
//
// The rules loop calls check every tick and, on a jump, moves what this
// run labelled with the old offset (rulesloop.go: clockJumped). Anything
// else that labels data with wall times (a frame store, one day) labels it
// with wall(steady(t)) and moves it there too. steady, now, wall and
// wallNow may be called from any goroutine; check only from the rules loop.
type clock struct {
	start  time.Time                     // time.Now() when made, with its monotonic reading
	base   time.Time                     // start's wall reading: where steady time begins
	read   func(now time.Time) time.Time // the wall clock at a time.Now() reading
	offset atomic.Int64                  // wall − steady in force, in ns
}

// clockJumpMin is the least change of wall − steady that check calls a
// jump. Both come from one time.Now() reading, so without a step they
// differ by the nanoseconds between the runtime's two clock reads (NTP's
// slewing changes the rate of both clocks alike). Steps start at ntpd's
// 128 ms; a smaller one is not followed, so labels stay within this of
// the system clock.
const clockJumpMin = 100 * time.Millisecond

// newClock starts a clock now. read gives the wall clock at a time.Now()
// reading; nil: that reading's own wall time (tests pass one they step).
func newClock(read func(now time.Time) time.Time) *clock {
	if read == nil {
		read = func(now time.Time) time.Time { return now.Round(0) }
	}
	start := time.Now()
	c := &clock{start: start, base: start.Round(0), read: read}
	c.offset.Store(int64(c.measure()))
	return c
}

// steady is t on the steady timeline. t must be a time.Now() reading of
// this process, or made from one by Add: a time without a monotonic
// reading (parsed, Round(0), UTC()) would bring its wall clock's jumps in.
func (c *clock) steady(t time.Time) time.Time { return c.base.Add(t.Sub(c.start)) }

// now is the steady time now.
func (c *clock) now() time.Time { return c.steady(time.Now()) }

// wall is the wall time users are shown for a steady time.
func (c *clock) wall(steady time.Time) time.Time { return steady.Add(c.wallOffset()) }

// wallNow is the wall time now, as this run labels it.
func (c *clock) wallNow() time.Time { return c.wall(c.now()) }

// wallOffset is wall − steady in force.
func (c *clock) wallOffset() time.Duration { return time.Duration(c.offset.Load()) }

func (c *clock) measure() time.Duration {
	now := time.Now()
	return c.read(now).Sub(c.steady(now))
}

// check measures the wall clock against steady time. When it has moved by
// clockJumpMin or more from the offset in force, check puts the new offset
// in force and returns the jump (new − old offset).
func (c *clock) check() (jump time.Duration, jumped bool) {
	old := c.wallOffset()
	// Two readings, and the nearer one counts: a thread descheduled between
	// the runtime's two clock reads skews one reading, a step moves both.
	jump = c.measure() - old
	if j := c.measure() - old; j.Abs() < jump.Abs() {
		jump = j
	}
	if jump.Abs() < clockJumpMin {
		return 0, false
	}
	c.offset.Store(int64(old + jump))
	return jump, true
}
