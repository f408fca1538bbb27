package daemon

import (
	"log/slog"
	"time"
)

// repeatInterval is how often a failure that keeps happening is logged
// again, with its count: once a minute says "still broken" without the 30
// lines a second a per-frame error would otherwise write.
const repeatInterval = time.Minute

// repeatLog collapses a repeating failure into one line when it starts, one
// line per repeatInterval with a count while it goes on, and one when it
// stops. It is used from one goroutine.
type repeatLog struct {
	log     *slog.Logger
	msg     string
	count   int // since the last line
	total   int // since the failure started
	lastLog time.Time
}

func newRepeatLog(log *slog.Logger, msg string) *repeatLog {
	return &repeatLog{log: log, msg: msg}
}

// add records one failure.
func (r *repeatLog) add(attrs ...any) {
	r.total++
	if r.total == 1 {
		r.log.Warn(r.msg, attrs...)
		r.lastLog = time.Now()
		return
	}
	r.count++
	if time.Since(r.lastLog) >= repeatInterval {
		r.log.Warn(r.msg, append(attrs, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))...)
		r.count, r.lastLog = 0, time.Now()
	}
}

// ok records a success: a failure that was going on is reported as over.
func (r *repeatLog) ok() {
	if r.total > 0 {
		r.log.Info(r.msg+": recovered", "failures", r.total)
	}
	r.count, r.total = 0, 0
}

// flush reports failures not yet logged (at shutdown).
func (r *repeatLog) flush() {
	if r.count > 0 {
		r.log.Warn(r.msg, "repeated", r.count, "over", time.Since(r.lastLog).Round(time.Second))
		r.count = 0
	}
}
