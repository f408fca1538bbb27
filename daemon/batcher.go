package daemon

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
)

// scoredFrame is a frame with its labels' probabilities, on its way from
// the batcher to the rules loop, which then owns (and closes) the frame.
// skipped: the change gate found it unchanged, and probs are those of the
// camera's last scored frame. embedding is the model's image embedding of
// the frame, or, when skipped, of the last scored frame (the picture the
// gate found the same); changed: the gate saw the picture change since the
// camera's last scored frame (what the frame store keeps).
type scoredFrame struct {
	frame     *capture.Frame
	names     []string
	probs     []float32
	skipped   bool
	embedding []float32
	changed   bool
}

// batcher is the cross-camera batcher: it waits for a pending frame, gives
// the cameras not in the batch yet at most maxWait to fill it, runs the vision tower
// once for all of them and hands each scored frame on. Frames that arrive
// while inference runs wait in the latest-frame hand-off, where a newer
// frame of the same camera replaces an older one (counted as dropped); so
// no frame is older than maxWait plus one inference when it is scored.
//
// A camera's change gate (gate.go) lets a frame that looks like the last
// scored one through at once with that frame's probabilities, without
// running the model: counted as skipped.
//
// Every frame the batcher takes is counted under exactly one word: scored
// (the model scored it), skipped (the change gate), failed (its batch
// failed, or it could not be made an image), or dropped (its camera was
// removed by a reload, or shutdown left no time to score it). With the
// hand-off's own drops, the sampled frames of a camera are the sum of the
// four.
//
// It owns out and closes it when it returns, after stop. Sends on out block:
// the rules loop is quick, and a slow one must slow scoring, not lose
// scores.
type batcher struct {
	in      *capture.Latest
	model   classifier
	sets    *scoring // a frame of a camera without labels (removed by a reload) is dropped
	size    int
	maxWait time.Duration
	out     chan<- scoredFrame
	metrics *metrics
	log     *slog.Logger
	fails   *kit.Repeat // failed batches
	unfit   *kit.Repeat // frames that cannot be made an image

	stopped chan struct{} // closed by stop
	drainBy time.Time     // written by stop before it closes stopped
	done    chan struct{} // closed when run returns

	gates map[string]*gate // per camera; the run goroutine's

	mu                               sync.Mutex
	scored, skipped, failed, dropped map[string]uint64    // frames, per camera
	embedding                        map[string][]float32 // per camera, its last scored frame's image embedding
}

// startBatcher starts the batcher on the daemon's hand-off; its output
// goes to the rules loop.
func (d *daemon) startBatcher(cfg *configs.Config) *batcher {
	b := newBatcher(d.latest, d.model, d.sets, cfg.Inference.BatchSize, cfg.Inference.MaxBatchWait.D(), d.rules.in, d.metrics, d.log)
	go b.run()
	return b
}

func newBatcher(in *capture.Latest, model classifier, sets *scoring, size int, maxWait time.Duration,
	out chan<- scoredFrame, m *metrics, log *slog.Logger) *batcher {
	return &batcher{
		in: in, model: model, sets: sets, size: size, maxWait: maxWait, out: out, metrics: m, log: log,
		fails:   kit.NewRepeat(log, "inference failed; the frames of this batch are counted as failed"),
		unfit:   kit.NewRepeat(log, "frame cannot be scored; counted as failed"),
		stopped: make(chan struct{}), done: make(chan struct{}), gates: map[string]*gate{},
		scored: map[string]uint64{}, skipped: map[string]uint64{}, failed: map[string]uint64{}, dropped: map[string]uint64{},
		embedding: map[string][]float32{},
	}
}

// stop tells the batcher that no more frames come: it scores what it holds
// and what is pending once more if that can end by drainBy, closes out and
// returns. stop waits for that.
func (b *batcher) stop(drainBy time.Time) {
	b.drainBy = drainBy
	close(b.stopped)
	<-b.done
}

func (b *batcher) run() {
	defer close(b.done)
	defer close(b.out)
	defer b.fails.Flush()
	defer b.unfit.Flush()
	var lastBatch time.Duration // how long the last batch took
	for {
		select {
		case <-b.stopped: // first, so that a stop is never missed for frames
			b.drain(nil, lastBatch)
			return
		default:
		}
		select {
		case <-b.in.Ready():
		case <-b.stopped:
			b.drain(nil, lastBatch)
			return
		}
		frames := b.in.Take(b.size)
		if len(frames) == 0 {
			continue
		}
		// Give the other cameras up to maxWait to join this batch. Once
		// every camera is in, waiting only idles the model: a camera's next
		// frame is a sampling interval away.
		timer := time.NewTimer(b.maxWait)
	collect:
		for len(frames) < b.size && !b.sets.everyCamera(frames) {
			select {
			case <-b.in.Ready():
				frames = append(frames, b.in.Take(b.size-len(frames))...)
			case <-timer.C:
				break collect
			case <-b.stopped:
				timer.Stop()
				b.drain(frames, lastBatch)
				return
			}
		}
		timer.Stop()
		start := time.Now()
		b.score(frames)
		lastBatch = time.Since(start)
	}
}

// drain handles the frames in hand and those still pending at stop: one
// last batch if it can end by drainBy (judged by the last batch's time),
// else they are closed unscored.
func (b *batcher) drain(frames []*capture.Frame, lastBatch time.Duration) {
	frames = append(frames, b.in.Take(b.size-len(frames))...)
	switch {
	case len(frames) == 0:
	case time.Now().Add(lastBatch).Before(b.drainBy):
		b.score(frames)
	default:
		b.log.Info("shutting down: no time left to score the last frames; counted as dropped", "frames", len(frames))
		for _, f := range frames {
			b.count(b.dropped, f.Camera)
			f.Close()
		}
	}
}

// score runs one batch through the model and sends each frame on; frames
// the change gate lets through go on at once, with the probabilities of
// their camera's last scored frame.
func (b *batcher) score(frames []*capture.Frame) {
	imgs := make([]infer.Image, 0, len(frames))
	sets := make([]*infer.LabelSet, 0, len(frames))
	thumbs := make([][]byte, 0, len(frames))
	changed := make([]bool, 0, len(frames))
	kept := frames[:0]
	for _, f := range frames {
		set, gateCfg := b.sets.get(f.Camera)
		if set == nil { // its camera was removed by a reload
			b.count(b.dropped, f.Camera)
			f.Close()
			continue
		}
		img, err := frameImage(f)
		if err != nil { // OpenCV gave a format we cannot score
			b.unfit.Add("camera", f.Camera, "err", err)
			b.count(b.failed, f.Camera)
			f.Close()
			continue
		}
		var thumb []byte
		saw := false
		if gateCfg.Enabled {
			thumb = thumbnail(f)
			g := b.gates[f.Camera]
			if g.reuse(gateCfg, set, thumb, f.Time) {
				b.count(b.skipped, f.Camera)
				b.out <- scoredFrame{frame: f, names: set.Names, probs: g.probs, skipped: true, embedding: g.embedding}
				continue
			}
			saw = g.sawChange(gateCfg, thumb)
		}
		kept, imgs, sets, thumbs = append(kept, f), append(imgs, img), append(sets, set), append(thumbs, thumb)
		changed = append(changed, saw)
	}
	if len(kept) == 0 {
		return
	}
	start := time.Now()
	for _, f := range kept {
		b.metrics.frameWait.Observe(start.Sub(f.Time).Seconds())
	}
	embs, err := b.model.EmbedImages(imgs)
	b.metrics.batchSize.Observe(float64(len(kept)))
	b.metrics.inference.Observe(time.Since(start).Seconds())
	if err != nil {
		b.fails.Add("batch", len(kept), "err", err)
		for _, f := range kept {
			b.count(b.failed, f.Camera)
			f.Close()
		}
		return
	}
	b.fails.OK()
	for i, f := range kept {
		b.mu.Lock()
		b.scored[f.Camera]++
		b.embedding[f.Camera] = embs[i]
		b.mu.Unlock()
		probs := b.model.Score(embs[i], sets[i])
		if thumbs[i] != nil {
			b.gates[f.Camera] = &gate{thumb: thumbs[i], set: sets[i], probs: probs, embedding: embs[i], at: f.Time}
		} else {
			delete(b.gates, f.Camera)
		}
		b.out <- scoredFrame{frame: f, names: sets[i].Names, probs: probs, embedding: embs[i], changed: changed[i]}
	}
}

func (b *batcher) count(m map[string]uint64, camera string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m[camera]++
}

// framesScored is how many of the camera's frames the model scored.
func (b *batcher) framesScored(camera string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.scored[camera]
}

// lastEmbedding is the image embedding of the camera's last scored frame
// (nil before one): what a mark of the frame on the live page keeps.
func (b *batcher) lastEmbedding(camera string) []float32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.embedding[camera]
}

// framesDropped is how many of the camera's frames the batcher took but
// could not score: its camera was removed, or shutdown came.
func (b *batcher) framesDropped(camera string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped[camera]
}

// framesFailed is how many of the camera's frames were in failed batches,
// or could not be made an image.
func (b *batcher) framesFailed(camera string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed[camera]
}

// framesSkipped is how many of the camera's frames the change gate spared
// the model.
func (b *batcher) framesSkipped(camera string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.skipped[camera]
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
