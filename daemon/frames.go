package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/framestore"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/infer"
)

// The frame store (package framestore) keeps scored frames' embeddings and
// thumbnails in state_dir/frames. The rules loop decides which frames to
// keep (frameKeeper: it knows which events are open) and hands them over
// without waiting; the HTTP API searches them through the daemon
// (framesAPI), which owns the model that embeds a query.

// framesDir is the store's folder in the state folder.
const framesDir = "frames"

// framesEffect is what a store that cannot write costs.
const framesEffect = "frames are not kept for search while it fails; events are not affected"

// thumbWidthStored is the stored thumbnails' width: a results grid shows
// them at about this size, and at JPEG quality thumbQuality one costs a
// few KB (docs/measurements.md, "frame store: disk per camera per day").
const (
	thumbWidthStored = 320
	thumbQuality     = 75
)

// probePrompt is embedded at start to tell models apart: stored frames are
// searched only with the model that embedded them.
const probePrompt = "a photo of a street at night"

// openFrames opens the frame store, or returns nil when it is off or its
// folder cannot be made (logged: the daemon runs on without it).
func (d *daemon) openFrames(cfg *configs.Config) *framestore.Store {
	if !cfg.Store.Enabled {
		return nil
	}
	key, err := modelKey(d.model)
	if err != nil {
		d.log.Warn("frame store off: the model does not embed text", "err", err)
		return nil
	}
	s, err := framestore.Open(framestore.Options{
		Dir: filepath.Join(cfg.StateDir, framesDir), Keep: cfg.Store.Keep.D(), MaxSize: int64(cfg.Store.MaxSize),
		ModelKey: key, Dim: d.model.Info().EmbedDim, File: d.state.File(framesDir, framesEffect), Log: d.log,
		Now: d.clock.wallNow,
	})
	if err != nil {
		d.log.Warn("frame store off", "err", err)
		return nil
	}
	d.log.Info("frame store open", "path", filepath.Join(cfg.StateDir, framesDir), "every", cfg.Store.Every,
		"keep", cfg.Store.Keep, "max_size", cfg.Store.MaxSize)
	return s
}

// modelKey names the model: its description, its scalars and the rounded
// embedding of a fixed prompt, so that another model (or another revision
// of it) gets another key, while the same model on another device (CPU,
// CUDA: the last digits differ) keeps its key.
func modelKey(m classifier) (string, error) {
	set, err := m.EmbedLabels([]infer.Label{{Name: "probe", Prompts: []string{probePrompt}}})
	if err != nil {
		return "", err
	}
	emb := set.Embedding(0)
	if emb == nil {
		return "", errors.New("no text embedding")
	}
	info := m.Info()
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d|%d|%.3f|%.3f|", info.Description.Family, info.Description.Size, info.Description.Parameters,
		info.EmbedDim, info.LogitScale, info.LogitBias)
	for _, v := range emb {
		fmt.Fprintf(h, "%.2f,", v)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// eventKeepEvery: while one of its events is open, a camera's frames the
// change gate skipped are kept this often — enough to time the moment a
// search finds, not a copy of every frame of a still scene.
const eventKeepEvery = time.Second

// frameKeeper decides which scored frames the store keeps. It is the rules
// loop's and used by its goroutine only.
type frameKeeper struct {
	store *framestore.Store
	every time.Duration
	last  map[string]time.Time // camera → frame time of its last kept frame
}

// keep hands a frame to the store when it is worth keeping: the model
// scored it while one of the camera's events was open (before or after
// it), the change gate saw the scene change, or every has passed since the
// camera's last kept frame. A frame the gate spared the model is kept with
// the embedding of the frame it looked like (its probabilities were that
// frame's too): every interval, and while an event is open every
// eventKeepEvery, so that a still scene is stored every interval, not
// once per max_skip, and a search's moment spans the event.
func (k *frameKeeper) keep(s scoredFrame, eventOpen bool) {
	if k == nil || s.embedding == nil {
		return
	}
	f := s.frame
	var reason framestore.Reason
	since := f.Time.Sub(k.last[f.Camera])
	switch {
	case eventOpen && (!s.skipped || since >= eventKeepEvery):
		reason = framestore.Event
	case s.changed:
		reason = framestore.Changed
	case since >= k.every:
		reason = framestore.Every
	default:
		return
	}
	crop := f.Region
	if crop.Empty() {
		crop = image.Rect(0, 0, f.Mat.Cols(), f.Mat.Rows())
	}
	it := framestore.Item{Camera: f.Camera, Time: f.Time, Reason: reason, Crop: crop, Width: f.Mat.Cols(), Height: f.Mat.Rows(),
		Embedding: s.embedding}
	if pic, ok := newStoredThumb(f.Mat); ok {
		it.Picture = pic
	}
	if k.store.Add(it) {
		k.last[f.Camera] = f.Time
	}
}

// storedThumb is a frame scaled to thumbWidthStored, made on the rules loop
// (a resize) and encoded on the store's writer (the JPEG).
type storedThumb struct{ mat gocv.Mat }

func newStoredThumb(m gocv.Mat) (*storedThumb, bool) {
	if m.Empty() || m.Cols() == 0 {
		return nil, false
	}
	w := min(thumbWidthStored, m.Cols())
	h := max(1, int(math.Round(float64(m.Rows())*float64(w)/float64(m.Cols()))))
	small := gocv.NewMat()
	gocv.Resize(m, &small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	if small.Empty() {
		small.Close()
		return nil, false
	}
	return &storedThumb{mat: small}, true
}

func (t *storedThumb) JPEG() ([]byte, error) {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, t.mat, []int{gocv.IMWriteJpegQuality, thumbQuality})
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

func (t *storedThumb) Close() { t.mat.Close() }

// FrameStore is the frame store's counts (false when it is off), for the
// metrics.
func (d *daemon) FrameStore() (framestore.Stats, bool) {
	if d.frames == nil {
		return framestore.Stats{}, false
	}
	return d.frames.Stats(), true
}

// framesAPI is the frame store as package httpapi sees it: the daemon's
// model embeds the queries, the running config names the cameras' labels.
type framesAPI struct{ d *daemon }

var _ httpapi.Frames = framesAPI{}

// defaultFloor is the probability a stored frame needs to be part of a
// moment when the query does not say: low, because a search is for
// finding things and a prompt typed into a box is rarely the best one.
const defaultFloor = 0.05

func (a framesAPI) Search(req httpapi.SearchRequest) (httpapi.SearchResult, error) {
	d, s := a.d, a.d.frames
	q := framestore.Query{Camera: req.Camera, From: req.From, To: req.To, Limit: req.Limit, Floor: req.Floor,
		Gap: 2 * d.config().Store.Every.D()}
	var res httpapi.SearchResult
	if req.Similar != nil {
		st, err := s.Get(*req.Similar)
		if err != nil {
			return res, err
		}
		q.Vector = st.Embedding
		if !req.FloorSet {
			q.Floor = 0.9
		}
	} else {
		set, err := d.model.EmbedLabels([]infer.Label{{Name: "query", Prompts: []string{req.Text}}})
		if err != nil {
			return res, fmt.Errorf("embedding the query: %w", err)
		}
		q.Vector = set.Embedding(0)
		info := d.model.Info()
		q.Score = func(cos float64) float64 { return float64(float32(sigmoid(info.LogitScale*cos + info.LogitBias))) }
		if !req.FloorSet {
			q.Floor = defaultFloor
		}
	}
	r, err := s.Search(q)
	res.Result, res.Floor = r, q.Floor
	return res, err
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func (a framesAPI) Frame(id framestore.ID) (framestore.Stored, map[string]float64, error) {
	st, err := a.d.frames.Get(id)
	if err != nil {
		return st, nil, err
	}
	set, _ := a.d.sets.get(st.Camera)
	if set == nil {
		return st, nil, nil // a camera no longer configured
	}
	probs := map[string]float64{}
	for i, p := range a.d.model.Score(st.Embedding, set) {
		probs[set.Names[i]] = float64(p)
	}
	return st, probs, nil
}

func (a framesAPI) Thumbnail(id framestore.ID) ([]byte, error) { return a.d.frames.Thumbnail(id) }
func (a framesAPI) DeleteAll() error                           { return a.d.frames.DeleteAll() }
func (a framesAPI) Stats() framestore.Stats                    { return a.d.frames.Stats() }
