package framestore

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siglipd/siglipd/daemon/framestore/vec"
)

// A search scores every stored frame against one query vector in two
// steps: an int8 scan of all of them (the in-memory codes), then an exact
// score, from the embeddings on disk, of every frame the int8 scan cannot
// rule out of the best (exactTop). Every score a search reports is exact.
//
// rerankK is how many of the best int8 cosines are re-scored first.
const rerankK = 256

// Query is one search.
type Query struct {
	// Vector is unit length: a text embedding (what the page's search box
	// sends through the text tower), or a stored frame's embedding.
	Vector []float32
	// Score maps a cosine to the score reported: for a text query the
	// model's sigmoid, so the score is the probability a label with that
	// prompt would have had; nil reports the cosine (similarity).
	Score  func(cos float64) float64
	Camera string    // "" for every camera
	From   time.Time // zero: from the oldest
	To     time.Time // zero: to the newest
	// Floor is the score a frame needs to be part of a moment.
	Floor float64
	Limit int // moments returned at most
	// Gap: stored frames of a camera further apart than this are not one
	// moment even if both score above the floor (the camera was off).
	Gap time.Duration
}

// Hit is a frame and its score.
type Hit struct {
	Frame
	Score float64
}

// Moment is consecutive stored frames of one camera that all score at or
// above the floor.
type Moment struct {
	Camera string
	Start  time.Time
	End    time.Time
	Frames int
	Best   Hit // the moment's best frame, with its exact score
}

// Result is what a search found.
type Result struct {
	Moments  []Moment
	Searched int  // frames scored
	Other    int  // frames another model embedded, not searched
	Loading  bool // the segments of earlier runs were still being read
}

// view is a segment as a search sees it: the prefix that existed when the
// search began.
type view struct {
	seq    uint32
	frames []meta
	codes  []int8
	dots   []int32
}

// snapshot takes the searchable segments' prefixes.
func (s *Store) snapshot() (views []view, cameras []string, other int, loading bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, g := range s.segs {
		if !g.searchable {
			other += len(g.frames)
			continue
		}
		if len(g.frames) > 0 {
			views = append(views, view{seq: g.seq, frames: g.frames[:len(g.frames):len(g.frames)], codes: g.codes[:len(g.frames)*g.dim]})
		}
	}
	return views, slices.Clone(s.cameras), other, s.loading
}

// scored is one frame's place and score during a search.
type scored struct {
	v, i  int32 // views[v].frames[i]
	cos   float64
	sigma float32 // the int8 cosine's standard error (errorSigma); 0 once exact
	exact bool
}

// errorSigma is the standard error of an int8 cosine: rounding each value
// of x to its scale sx errs uniformly within ±sx/2 (variance sx²/12), so
// for unit vectors the dot product errs with variance (sx² + sq²)/12.
func errorSigma(sx, sq float64) float32 { return float32(math.Sqrt((sx*sx + sq*sq) / 12)) }

// sigmas bounds how far an int8 cosine may be from the exact one for a
// frame to be left out of the exact re-score: the error is a sum of
// hundreds of independent roundings, near normal, and beyond 7 standard
// errors none is expected among a billion frames.
const sigmas = 7

// scan runs the int8 scan over every view in parallel.
func (s *Store) scan(q []float32, views []view) float64 {
	codes := make([]int8, len(q))
	qscale := vec.Quantize(codes, q)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(views) {
					return
				}
				v := &views[k]
				v.dots = make([]int32, len(v.frames))
				vec.DotInt8(codes, v.codes, s.opts.Dim, v.dots)
			}
		})
	}
	wg.Wait()
	return float64(qscale)
}

// candidates scans and returns the frames that pass the query's camera and
// time filters, with their approximate cosines.
func (s *Store) candidates(q Query) ([]view, []string, []scored, int, bool, error) {
	if len(q.Vector) != s.opts.Dim {
		return nil, nil, nil, 0, false, fmt.Errorf("query has %d values, the stored embeddings %d", len(q.Vector), s.opts.Dim)
	}
	views, cameras, other, loading := s.snapshot()
	qscale := s.scan(q.Vector, views)
	cam := -1
	if q.Camera != "" {
		cam = slices.Index(cameras, q.Camera)
		if cam < 0 {
			return views, cameras, nil, other, loading, nil
		}
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		to = q.To.UnixNano()
	}
	total := 0
	for _, v := range views {
		total += len(v.frames)
	}
	out := make([]scored, 0, total)
	for v := range views {
		for i, m := range views[v].frames {
			if (cam >= 0 && int(m.cam) != cam) || m.time < from || m.time > to {
				continue
			}
			out = append(out, scored{v: int32(v), i: int32(i), cos: float64(views[v].dots[i]) * qscale * float64(m.scale),
				sigma: errorSigma(float64(m.scale), qscale)})
		}
	}
	return views, cameras, out, other, loading, nil
}

// rerank replaces the approximate cosines of the frames at idx with exact
// ones from the embeddings on disk. A frame whose segment
// retention deleted meanwhile keeps its approximate cosine.
func (s *Store) rerank(q []float32, views []view, all []scored, idx []int) {
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(all[a].v, all[b].v), cmp.Compare(all[a].i, all[b].i))
	})
	var f *os.File
	open := int32(-1)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for _, k := range idx {
		c := &all[k]
		if c.exact {
			continue
		}
		if c.v != open {
			if f != nil {
				f.Close()
				f = nil
			}
			open = c.v
			var err error
			if f, err = os.Open(embPath(s.opts.Dir, views[c.v].seq)); err != nil {
				f = nil
			}
		}
		if f == nil {
			continue
		}
		r, err := readRecord(f, int64(views[c.v].frames[c.i].off))
		if err != nil {
			continue
		}
		c.cos, c.exact, c.sigma = dot(q, r.embedding), true, 0
	}
}

// best returns the indexes of the k highest cosines, highest first: a
// min-heap of k, so the cost stays linear in the frames searched.
func best(all []scored, k int) []int {
	if k <= 0 {
		return nil
	}
	h := make([]int, 0, k)
	less := func(a, b int) bool { return all[h[a]].cos < all[h[b]].cos }
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && less(l, m) {
				m = l
			}
			if r := l + 1; r < len(h) && less(r, m) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := range all {
		switch {
		case len(h) < k:
			h = append(h, i)
			for j := len(h) - 1; j > 0 && less(j, (j-1)/2); j = (j - 1) / 2 {
				h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
			}
		case all[i].cos > all[h[0]].cos:
			h[0] = i
			down(0)
		}
	}
	slices.SortFunc(h, func(a, b int) int { return cmp.Compare(all[b].cos, all[a].cos) })
	return h
}

// maxRefine bounds the frames one search re-scores from disk: a store of
// one still scene would otherwise re-read all of it.
const maxRefine = 50000

// exactTop re-scores from disk every frame that could be among the k best:
// first the rerankK best int8 cosines, then each other frame whose int8
// cosine is within sigmas standard errors of the k-th best exact one. So
// the k best come out as an exact float32 scan ranks them, however many
// near-identical frames a still camera stored (a fixed number of
// candidates is not enough there; docs/measurements.md). It returns the
// indexes re-scored.
func (s *Store) exactTop(q []float32, views []view, all []scored, k int) []int {
	idx := best(all, max(k, rerankK))
	s.rerank(q, views, all, idx)
	if len(idx) < k || k <= 0 {
		return idx
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(all[b].cos, all[a].cos) })
	kth := all[idx[k-1]].cos
	var more []int
	for i := range all {
		if c := &all[i]; !c.exact && c.cos+sigmas*float64(c.sigma) >= kth {
			more = append(more, i)
		}
	}
	if len(more) > maxRefine {
		slices.SortFunc(more, func(a, b int) int { return cmp.Compare(all[b].cos, all[a].cos) })
		more = more[:maxRefine]
	}
	s.rerank(q, views, all, more)
	return append(idx, more...)
}

func (q Query) score(cos float64) float64 {
	if q.Score == nil {
		return cos
	}
	return q.Score(cos)
}

func hit(views []view, cameras []string, c scored, q Query) Hit {
	m := views[c.v].frames[c.i]
	return Hit{
		Frame: Frame{ID: makeID(views[c.v].seq, m.off), Camera: cameras[m.cam], Time: time.Unix(0, m.time), Reason: m.reason},
		Score: q.score(c.cos),
	}
}

// Top returns the k stored frames that score highest, exactly scored,
// best first: the frames a search's moments are made around.
func (s *Store) Top(q Query, k int) ([]Hit, error) {
	views, cameras, all, _, _, err := s.candidates(q)
	if err != nil {
		return nil, err
	}
	idx := s.exactTop(q.Vector, views, all, k)
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(all[b].cos, all[a].cos) })
	idx = idx[:min(k, len(idx))]
	out := make([]Hit, len(idx))
	for j, i := range idx {
		out[j] = hit(views, cameras, all[i], q)
	}
	return out, nil
}

// Search returns the moments that match the query best, best first.
func (s *Store) Search(q Query) (Result, error) {
	views, cameras, all, other, loading, err := s.candidates(q)
	if err != nil {
		return Result{}, err
	}
	res := Result{Searched: len(all), Other: other, Loading: loading}
	s.exactTop(q.Vector, views, all, max(q.Limit, 1))
	moments := s.moments(views, all, q)
	slices.SortFunc(moments, func(a, b moment) int { return cmp.Compare(all[b.best].cos, all[a.best].cos) })
	if q.Limit > 0 && len(moments) > q.Limit {
		moments = moments[:q.Limit]
	}
	// Every reported score is exact: the best frames the rerank missed
	// (outside its top, in a moment that made the list) are scored now.
	bestIdx := make([]int, len(moments))
	for i, m := range moments {
		bestIdx[i] = m.best
	}
	s.rerank(q.Vector, views, all, bestIdx)
	slices.SortStableFunc(moments, func(a, b moment) int { return cmp.Compare(all[b.best].cos, all[a.best].cos) })
	for _, m := range moments {
		first, last := views[all[m.first].v].frames[all[m.first].i], views[all[m.last].v].frames[all[m.last].i]
		res.Moments = append(res.Moments, Moment{
			Camera: cameras[first.cam], Start: time.Unix(0, first.time), End: time.Unix(0, last.time),
			Frames: m.frames, Best: hit(views, cameras, all[m.best], q),
		})
	}
	return res, nil
}

// moment is a Moment during a search: indexes into the scored frames.
type moment struct{ first, last, best, frames int }

// moments merges, per camera, consecutive frames at or above the floor.
// all is in segment and file order, which is the order frames were stored.
func (s *Store) moments(views []view, all []scored, q Query) []moment {
	var out []moment
	open := map[uint16]int{} // camera → index in out of its moment still growing
	gap := q.Gap.Nanoseconds()
	for k, c := range all {
		m := views[c.v].frames[c.i]
		j, growing := open[m.cam]
		if q.score(c.cos) < q.Floor {
			delete(open, m.cam)
			continue
		}
		if growing {
			prev := views[all[out[j].last].v].frames[all[out[j].last].i]
			if gap > 0 && m.time-prev.time > gap {
				growing = false
			}
		}
		if !growing {
			open[m.cam] = len(out)
			out = append(out, moment{first: k, last: k, best: k, frames: 1})
			continue
		}
		o := &out[j]
		o.last, o.frames = k, o.frames+1
		if c.cos > all[o.best].cos {
			o.best = k
		}
	}
	return out
}

// Embeddings calls fn, in stored order, with every searchable frame of a
// camera between from and to and its embedding:
// what a preview scores a label on. fn's error stops it; fn must not keep
// the embedding, which is reused.
func (s *Store) Embeddings(camera string, from, to time.Time, fn func(Frame, []float32) error) error {
	views, cameras, _, _ := s.snapshot()
	cam := slices.Index(cameras, camera)
	if cam < 0 {
		return nil
	}
	emb := make([]float32, s.opts.Dim)
	for _, v := range views {
		f, err := os.Open(embPath(s.opts.Dir, v.seq))
		if errors.Is(err, os.ErrNotExist) {
			continue // retention deleted it meanwhile
		}
		if err != nil {
			return err
		}
		err = func() error {
			defer f.Close()
			for _, m := range v.frames {
				if int(m.cam) != cam || (!from.IsZero() && m.time < from.UnixNano()) || (!to.IsZero() && m.time > to.UnixNano()) {
					continue
				}
				r, err := readRecord(f, int64(m.off))
				if err != nil {
					return err
				}
				decodeEmbedding(emb, r.embedding)
				if err := fn(Frame{ID: makeID(v.seq, m.off), Camera: camera, Time: time.Unix(0, m.time), Reason: m.reason}, emb); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}
