package daemon

import (
	"image"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
)

// The change gate compares small grey thumbnails of the camera's picture
// (inside its crop), of at least thumbWidth × thumbHeight cells: at this
// size sensor noise and compression artefacts average out, while an object
// of a few percent of the picture still covers dozens of cells.
const (
	thumbWidth, thumbHeight = 64, 48
	// cellNoise is how far (of 255) a cell's brightness may move without
	// counting as changed: above what noise and H.264 leave on a still
	// scene, below what an object entering it does.
	cellNoise = 12
)

// gate remembers, for one camera, the last frame the model scored: its
// thumbnail, labels, probabilities and time. It is the batcher's, used by
// its goroutine only.
type gate struct {
	thumb []byte
	set   *infer.LabelSet
	probs []float32
	at    time.Time // frame time
	// embedding is the scored frame's; the frame store keeps it with a
	// skipped frame's picture.
	embedding []float32
}

// reuse reports whether a frame whose thumbnail is thumb, taken at t, may
// take the last scored frame's probabilities instead of being scored: the
// gate is on, the labels are the same, the last score is younger than
// max_skip, and less than min_change of the picture changed.
func (g *gate) reuse(cfg configs.SkipUnchanged, set *infer.LabelSet, thumb []byte, t time.Time) bool {
	if g == nil || !cfg.Enabled || thumb == nil || g.set != set || len(g.thumb) != len(thumb) ||
		t.Sub(g.at) >= cfg.MaxSkip.D() || t.Before(g.at) {
		return false
	}
	return changed(g.thumb, thumb) < cfg.MinChange
}

// sawChange reports whether at least min_change of the picture changed
// since the last scored frame: a frame scored because of that, not because
// max_skip passed, the labels changed or it is the camera's first.
func (g *gate) sawChange(cfg configs.SkipUnchanged, thumb []byte) bool {
	return g != nil && thumb != nil && len(g.thumb) == len(thumb) && changed(g.thumb, thumb) >= cfg.MinChange
}

// changed is the fraction of cells whose brightness moved by more than
// cellNoise.
func changed(a, b []byte) float64 {
	n := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d > cellNoise || d < -cellNoise {
			n++
		}
	}
	return float64(n) / float64(len(a))
}

// thumbnail is the grey thumbnail of the frame inside its crop, or nil when
// OpenCV cannot make one (the frame is then simply scored). Each cell is
// the mean of a whole number of pixels (k×kh, so at least thumbWidth ×
// thumbHeight cells): OpenCV's fast path for area resizing, and the few
// pixels past the last whole cell are left out.
func thumbnail(f *capture.Frame) []byte {
	r := f.Region
	if r.Empty() {
		r = image.Rect(0, 0, f.Mat.Cols(), f.Mat.Rows())
	}
	kx, ky := max(1, r.Dx()/thumbWidth), max(1, r.Dy()/thumbHeight)
	w, h := r.Dx()/kx, r.Dy()/ky
	if w == 0 || h == 0 {
		return nil
	}
	src := f.Mat.Region(image.Rect(r.Min.X, r.Min.Y, r.Min.X+w*kx, r.Min.Y+h*ky))
	defer src.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(src, &small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(small, &grey, gocv.ColorBGRToGray)
	if grey.Empty() {
		return nil
	}
	return grey.ToBytes()
}
