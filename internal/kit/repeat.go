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
// (OK) or when its owner ends (Flush). A failure with causes (AddCause) is
// also logged at once when its cause changes. It is used from one
// goroutine.
type Repeat struct {
	log     *slog.Logger
	msg     string
	every   time.Duration // reminders while the failure goes on; 0 for none
	cause   string        // of the failure going on, as AddCause was told
	count   int           // failures since the last line
	total   int           // failures since the failure started
	lastLog time.Time
}

// NewRepeat returns a Repeat that logs msg.
func NewRepeat(log *slog.Logger, msg string) *Repeat {
	return &Repeat{log: log, msg: msg, every: RepeatInterval}
}

// Quiet drops the reminders: a failure that goes on is logged again only
// when its cause changes. For a failure that a metric follows while it
// lasts, and whose log lines may go to the very disk that failed.
func (r *Repeat) Quiet() *Repeat {
	r.every = 0
	return r
}

// Add records one failure; attrs describe this one (the first and the
// periodic lines carry them).
func (r *Repeat) Add(attrs ...any) { r.AddCause(r.cause, attrs...) }

// AddCause records one failure of a cause, a short phrase that stays the
// same while the failure is the same ("disk full", "read-only"): a failure
// whose cause is not the last one's is logged at once, with "cause".
func (r *Repeat) AddCause(cause string, attrs ...any) {
	r.total++
	if r.total == 1 || cause != r.cause {
		r.cause = cause
		if cause != "" {
			attrs = append([]any{"cause", cause}, attrs...)
		}
		r.log.Warn(r.msg, attrs...)
		r.count, r.lastLog = 0, time.Now()
		return
	}
	r.count++
	if r.every > 0 && time.Since(r.lastLog) >= r.every {
		r.log.Warn(r.msg, append(attrs, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))...)
		r.count, r.lastLog = 0, time.Now()
	}
}

// Failing reports whether a failure is going on (Add since the last OK).
func (r *Repeat) Failing() bool { return r.total > 0 }

// OK records a success: a failure that was going on is reported as over,
// with how many times it happened; attrs are added to that line.
func (r *Repeat) OK(attrs ...any) {
	if r.total > 0 {
		r.log.Info(r.msg+": recovered", append(attrs, "failures", r.total)...)
	}
	r.count, r.total, r.cause = 0, 0, ""
}

// Flush logs the failures not logged yet (when the owner stops).
func (r *Repeat) Flush() {
	if r.count > 0 {
		r.log.Warn(r.msg, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))
		r.count, r.lastLog = 0, time.Now()
	}
}
