package daemon

import (
	"log/slog"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

// emitter is the one path of every event: observed, ticked, changed by a
// reload, ended at shutdown or recovered after a crash. Each event is
// journaled, kept in the score history, handed to the sink, counted and
// logged exactly once. It is
// used by one goroutine at a time (start-up, then the rules loop).
type emitter struct {
	sink      publish.Sink
	journal   *journal // nil when the state folder is unusable
	history   *history.Store
	metrics   *metrics
	log       *slog.Logger
	clock     *clock
	snapshots bool // a start carries a JPEG of its frame
}

// emit sends events; f is the frame that caused them, or nil.
func (e *emitter) emit(events []rules.Event, f *capture.Frame) {
	for _, ev := range events {
		if e.journal != nil {
			e.journal.record(ev)
		}
		e.history.Event(ev)
		var jpeg []byte
		if ev.Type == rules.TypeStart && f != nil && e.snapshots {
			if buf, err := gocv.IMEncode(gocv.JPEGFileExt, f.Mat); err == nil {
				jpeg = append([]byte(nil), buf.GetBytes()...)
				buf.Close()
			}
		}
		e.sink.Event(ev, jpeg)
		e.metrics.events.WithLabelValues(ev.Camera, ev.Label, ev.Type).Inc()
		if f != nil {
			e.metrics.frameToEvent.Observe(time.Since(f.Time).Seconds())
		}
		e.log.Info("event", "type", ev.Type, "camera", ev.Camera, "label", ev.Label, "score", round3(ev.Score), "id", ev.ID)
	}
}

// retry saves the journal again if its last save failed (a full or
// read-only disk), so that it is current soon after the disk works, not
// only at the next event.
func (e *emitter) retry(now time.Time) {
	if e.journal != nil {
		e.journal.retry(now)
	}
}

// endLeftOpen ends, now, the events the last run left open (it died), as
// the journal remembers them. When now is before an event's last frame the
// clock is behind the last run's (a box that booted with an old time, or a
// clock stepped back): that event ends at its last frame's time instead,
// since an end before the event's own frames would be a lie; it did end
// after that frame.
func (e *emitter) endLeftOpen(left []rules.Event) {
	if len(left) == 0 {
		return
	}
	e.log.Warn("the last run stopped with events open; ending them now", "events", len(left))
	now := e.clock.wallNow()
	ends := make([]rules.Event, len(left))
	behind := 0
	for i, ev := range left {
		at := now
		if at.Before(ev.FrameTime) {
			at = ev.FrameTime
			behind++
		}
		ends[i] = rules.Ended(ev, at)
	}
	if behind > 0 {
		e.log.Warn("the clock is behind the last run's events; they end at their last frame's time",
			"events", behind, "now", now.Format(time.RFC3339))
	}
	e.emit(ends, nil)
}

func round3(x float64) float64 { return float64(int(x*1000+0.5)) / 1000 }
