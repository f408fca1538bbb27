package daemon

import (
	"fmt"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/rules"
)

// scoredFrame is a frame with its labels' probabilities, on its way from
// the batcher to the rules loop, which then owns (and closes) the frame.
type scoredFrame struct {
	frame *capture.Frame
	names []string
	probs []float32
}

// ruleUpdate asks the rules loop to replace its rules (config reload).
type ruleUpdate struct {
	rules []rules.Rule
	done  chan struct{}
}

// inferLoop is the cross-camera batcher: it waits for a pending frame,
// gives other cameras at most max_batch_wait to fill the batch, runs the
// vision tower once for all of them and hands each scored frame on. Frames
// that arrive while inference runs wait in the latest-frame hand-off, where
// a newer frame of the same camera replaces an older one; so no frame is
// ever older than max_batch_wait plus one inference when it is scored.
//
// When captureDone closes it scores what is pending once more, closes out
// and returns.
func (d *daemon) inferLoop(captureDone <-chan struct{}, out chan<- scoredFrame) {
	defer close(out)
	d.mu.Lock()
	batchSize, maxWait := d.cfg.Inference.BatchSize, d.cfg.Inference.MaxBatchWait.D()
	d.mu.Unlock()
	failures := newRepeatLog(d.log, "inference failed; frames of this batch are dropped")
	defer failures.flush()
	var lastBatch time.Duration // how long the last batch took
	for {
		select {
		case <-d.latest.Ready():
		case <-captureDone:
			frames := d.latest.Take(batchSize)
			switch {
			case len(frames) == 0:
			case time.Now().Add(lastBatch).Before(d.drainBy):
				d.scoreBatch(frames, out, failures)
			default:
				d.log.Info("shutting down: last frames not scored, no time left", "frames", len(frames))
				for _, f := range frames {
					f.Close()
				}
			}
			return
		}
		frames := d.latest.Take(batchSize)
		if len(frames) == 0 {
			continue
		}
		// Give the other cameras up to max_batch_wait to join this batch.
		timer := time.NewTimer(maxWait)
	collect:
		for len(frames) < batchSize {
			select {
			case <-d.latest.Ready():
				frames = append(frames, d.latest.Take(batchSize-len(frames))...)
			case <-timer.C:
				break collect
			case <-captureDone:
				break collect
			}
		}
		timer.Stop()
		start := time.Now()
		d.scoreBatch(frames, out, failures)
		lastBatch = time.Since(start)
	}
}

// scoreBatch runs one batch through the model and sends each frame on.
func (d *daemon) scoreBatch(frames []*capture.Frame, out chan<- scoredFrame, failures *repeatLog) {
	imgs := make([]infer.Image, 0, len(frames))
	sets := make([]*infer.LabelSet, 0, len(frames))
	kept := frames[:0]
	for _, f := range frames {
		set := d.sets.get(f.Camera)
		img, err := frameImage(f)
		if set == nil || err != nil {
			// A camera removed by a reload, or a frame OpenCV gave in a
			// format we cannot score.
			if err != nil {
				failures.add("camera", f.Camera, "err", err)
			}
			f.Close()
			continue
		}
		kept, imgs, sets = append(kept, f), append(imgs, img), append(sets, set)
	}
	if len(kept) == 0 {
		return
	}
	start := time.Now()
	for _, f := range kept {
		d.metrics.frameWait.Observe(start.Sub(f.Time).Seconds())
	}
	probs, err := d.model.Classify(imgs, sets)
	took := time.Since(start)
	d.metrics.batchSize.Observe(float64(len(kept)))
	d.metrics.inference.Observe(took.Seconds())
	if err != nil {
		failures.add("batch", len(kept), "err", err)
		for _, f := range kept {
			f.Close()
		}
		return
	}
	failures.ok()
	for i, f := range kept {
		d.metrics.inferred.WithLabelValues(f.Camera).Inc()
		out <- scoredFrame{frame: f, names: sets[i].Names, probs: probs[i]}
	}
}

// frameImage views a frame's crop as an infer.Image, without copying.
func frameImage(f *capture.Frame) (infer.Image, error) {
	if f.Mat.Type() != gocv.MatTypeCV8UC3 {
		return infer.Image{}, fmt.Errorf("frame is not 8-bit BGR (type %v)", f.Mat.Type())
	}
	pix, err := f.Mat.DataPtrUint8()
	if err != nil {
		return infer.Image{}, err
	}
	img := infer.Image{Pix: pix, Width: f.Mat.Cols(), Height: f.Mat.Rows(), Stride: f.Mat.Step()}
	if r := f.Region; !r.Empty() && (r.Dx() != img.Width || r.Dy() != img.Height) {
		img = img.Sub(r)
	}
	return img, nil
}

// rulesLoop owns the rules Machine: it feeds it every scored frame, ticks it
// every second (so events of a quiet camera still end) and swaps its rules
// on reload. Events go to the sink, which never blocks; scores and the
// frame go to the live state for the HTTP page. When in closes (shutdown,
// the last frames scored) it ends the events still open and returns.
func (d *daemon) rulesLoop(m *rules.Machine, in <-chan scoredFrame) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	up := map[string]bool{} // camera → last availability told to the sink
	for {
		select {
		case s, ok := <-in:
			if !ok {
				if ends := m.Close(time.Now()); len(ends) > 0 {
					d.log.Info("shutting down: ending the events still open", "events", len(ends))
					d.emit(ends, nil)
				}
				return
			}
			d.handleScored(m, s)
		case now := <-ticker.C:
			d.emit(m.Tick(now), nil)
			d.live.setStates(m.States())
			d.reportAvailability(up)
		case u := <-d.ruleUpdates:
			d.emit(m.SetRules(u.rules, time.Now()), nil)
			d.live.setStates(m.States())
			close(u.done)
		}
	}
}

// reportAvailability tells the sink which cameras deliver frames (state
// connected), when that changed since the last call; last is the caller's
// memory of what it told. Called every second, so a camera that goes down
// is unavailable in Home Assistant within a second of capture noticing. A
// camera a reload removed is forgotten: the sink forgets it too, so if it
// comes back it must be told again.
func (d *daemon) reportAvailability(last map[string]bool) {
	present := map[string]bool{}
	for _, st := range d.cameraStatuses() {
		present[st.Name] = true
		up := st.State == capture.StateConnected
		if was, ok := last[st.Name]; !ok || was != up {
			last[st.Name] = up
			d.sink.CameraAvailable(st.Name, up)
		}
	}
	for name := range last {
		if !present[name] {
			delete(last, name)
		}
	}
}

func (d *daemon) handleScored(m *rules.Machine, s scoredFrame) {
	f := s.frame
	probs := make(map[string]float64, len(s.names))
	for i, n := range s.names {
		probs[n] = float64(s.probs[i])
		d.metrics.probability.WithLabelValues(f.Camera, n).Set(float64(s.probs[i]))
	}
	events := m.Observe(f.Camera, f.Time, probs)
	d.emit(events, f)
	d.sink.Scores(f.Camera, f.Time, probs)
	d.live.setScores(f, probs, m.States()) // takes ownership of f
}

// emit is the one path of every event (observed, ticked, reloaded, ended at
// shutdown, recovered after a crash): it is journaled, published, counted and
// logged once. A start carries a JPEG of its frame when snapshots are on.
func (d *daemon) emit(events []rules.Event, f *capture.Frame) {
	for _, ev := range events {
		if d.journal != nil {
			d.journal.record(ev)
		}
		var jpeg []byte
		if ev.Type == rules.TypeStart && f != nil && d.snapshotsEnabled() {
			if buf, err := gocv.IMEncode(gocv.JPEGFileExt, f.Mat); err == nil {
				jpeg = append([]byte(nil), buf.GetBytes()...)
				buf.Close()
			}
		}
		d.sink.Event(ev, jpeg)
		d.metrics.events.WithLabelValues(ev.Camera, ev.Label, ev.Type).Inc()
		if f != nil {
			d.metrics.frameToEvent.Observe(time.Since(f.Time).Seconds())
		}
		d.log.Info("event", "type", ev.Type, "camera", ev.Camera, "label", ev.Label, "score", round3(ev.Score), "id", ev.ID)
	}
}

func (d *daemon) snapshotsEnabled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Sink == "mqtt" && d.cfg.MQTT.Snapshots.Enabled
}

func round3(x float64) float64 { return float64(int(x*1000+0.5)) / 1000 }
