package kit

import (
	"log/slog"
	"time"
)

// RepeatInterval is how often a failure that keeps happening is logged
// again, with its count: once a minute says "still broken" without the 30
// lines a second a per-frame error would otherwise write.
const RepeatInterval = time.Minute

// Repeat collapses a failure that can repeat (on every frame, every batch,
// every reconnect) into one warning when it starts, one line per
// RepeatInterval with a count while it goes on, and one line when it stops
// (OK) or when its owner ends (Flush). It is used from one goroutine.
type Repeat struct {
	log     *slog.Logger
	msg     string
	count   int // failures since the last line
	total   int // failures since the failure started
	lastLog time.Time
}

// NewRepeat returns a Repeat that logs msg.
func NewRepeat(log *slog.Logger, msg string) *Repeat {
	return &Repeat{log: log, msg: msg}
}

// Add records one failure; attrs describe this one (the first and the
// periodic lines carry them).
func (r *Repeat) Add(attrs ...any) {
	r.total++
	if r.total == 1 {
		r.log.Warn(r.msg, attrs...)
		r.lastLog = time.Now()
		return
	}
	r.count++
	if time.Since(r.lastLog) >= RepeatInterval {
		r.log.Warn(r.msg, append(attrs, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))...)
		r.count, r.lastLog = 0, time.Now()
	}
}

// Failing reports whether a failure is going on (Add since the last OK).
func (r *Repeat) Failing() bool { return r.total > 0 }

// OK records a success: a failure that was going on is reported as over,
// with how many times it happened.
func (r *Repeat) OK() {
	if r.total > 0 {
		r.log.Info(r.msg+": recovered", "failures", r.total)
	}
	r.count, r.total = 0, 0
}

// Flush logs the failures not logged yet (when the owner stops).
func (r *Repeat) Flush() {
	if r.count > 0 {
		r.log.Warn(r.msg, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))
		r.count, r.lastLog = 0, time.Now()
	}
}
