package framestore

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// The 1 M-frame store BenchmarkSearch1M searches: a week of four cameras
// that store a frame every 2.4 s each. A camera's frames come in runs of
// near-identical ones (a still scene, a parked car), each run near one of
// the camera's centres, and a scene comes back in later runs (day after
// day), as a camera's embeddings do.
const (
	benchFrames  = 1_000_000
	benchDim     = 768 // SigLIP base
	benchCentres = 5000
	benchQueries = 100
	benchSpan    = 7 * 24 * time.Hour
	// benchTruthK exact best frames are kept per query: the first 20 to
	// compare with Top, the one at benchFloorRank sets the Search floor.
	benchTruthK    = 256
	benchFloorRank = 199
	// benchFillVersion names the generator; change it when the generator
	// changes, and a cached store is filled anew.
	benchFillVersion = 1
	benchModelKey    = "bench-base"
	// benchMinFree is the disk space a fill needs with room to spare: the
	// segments take about 3.2 GB.
	benchMinFree = 8 << 30
)

var (
	benchCameras = []string{"driveway", "porch", "garden", "street"}
	benchStart   = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	benchStep    = benchSpan / benchFrames // between two stored frames of the store
	// benchNoise is the per-value noise of a frame around its run's centre:
	// cosine to the centre ≈ 0.998, 0.994, 0.976 (a still night, a
	// swaying tree, rain); each run has one.
	benchNoise = []float64{0.002, 0.004, 0.008}
	// The sigmoid the daemon turns a text query's cosine into a
	// probability with (SigLIP base's logit scale and bias, rounded).
	benchScale, benchBias = 117.3, -12.9
)

// benchSet is what the frames and queries are made from: everything but
// the per-frame noise, which a frame's own seed gives.
type benchSet struct {
	centres [][]float32
	centre  []uint16 // per frame: its run's centre
	noise   []uint8  // per frame: its run's benchNoise index
	queries [][]float32
}

func newBenchSet() *benchSet {
	rng := rand.New(rand.NewPCG(25, benchFillVersion))
	// Every SigLIP image embedding shares a large component, and a
	// camera's frames share its view: centres of one camera are ≈ 0.5
	// apart in cosine, of two cameras ≈ 0.2.
	common := randomUnit(rng, benchDim)
	views := make([][]float32, len(benchCameras))
	for c := range views {
		views[c] = randomUnit(rng, benchDim)
	}
	set := &benchSet{centre: make([]uint16, benchFrames), noise: make([]uint8, benchFrames)}
	for c := range benchCentres {
		r := randomUnit(rng, benchDim)
		v := make([]float32, benchDim)
		for j := range v {
			v[j] = 0.45*common[j] + 0.55*views[c%len(benchCameras)][j] + 0.7*r[j]
		}
		set.centres = append(set.centres, unit(rng, v, 0))
	}
	// Camera c holds frames c, c+4, c+8, … in runs of 10 to 400 frames
	// (24 s to 16 min), each near one of its centres (c, c+4, …).
	cams := len(benchCameras)
	for c := range cams {
		for k := c; k < benchFrames; {
			n := 10 + rng.IntN(391)
			centre := uint16(c + cams*rng.IntN(benchCentres/cams))
			noise := uint8(rng.IntN(len(benchNoise)))
			for ; n > 0 && k < benchFrames; n, k = n-1, k+cams {
				set.centre[k], set.noise[k] = centre, noise
			}
		}
	}
	// Queries: half near a centre (cosine 0.2 to 0.9 to it: a text
	// query's is low, a frame's high), half far from every frame (a
	// random direction).
	for q := range benchQueries {
		if q%2 == 1 {
			set.queries = append(set.queries, randomUnit(rng, benchDim))
			continue
		}
		c := set.centres[rng.IntN(benchCentres)]
		r := randomUnit(rng, benchDim)
		t := 0.2 + 0.7*rng.Float64()
		v := make([]float32, benchDim)
		for j := range v {
			v[j] = float32(t*float64(c[j]) + math.Sqrt(1-t*t)*float64(r[j]))
		}
		set.queries = append(set.queries, unit(rng, v, 0))
	}
	return set
}

// frame writes frame i's embedding into x: its centre plus its own noise,
// unit length. rng draws from pcg, which is reseeded here: a frame's
// noise is its own, whichever worker writes it.
func (set *benchSet) frame(x []float32, i int, pcg *rand.PCG, rng *rand.Rand) {
	pcg.Seed(benchFillVersion, uint64(i))
	perturb(x, rng, set.centres[set.centre[i]], benchNoise[set.noise[i]])
}

func benchTime(i int) time.Time  { return benchStart.Add(time.Duration(i) * benchStep) }
func benchIndex(t time.Time) int { return int(t.Sub(benchStart) / benchStep) }

// benchSeq is the segment frame i is in: one per hour, as segmentSpan
// makes them.
func benchSeq(i int) uint32 { return uint32(time.Duration(i)*benchStep/time.Hour) + 1 }

// truthHit is one of a query's best frames by the exact scan.
type truthHit struct {
	I   int     `json:"i"`
	Cos float64 `json:"cos"`
}

// topK keeps the k highest cosines seen: a min-heap.
type topK struct {
	k int
	h []truthHit
}

func (t *topK) push(c truthHit) {
	less := func(a, b int) bool { return t.h[a].Cos < t.h[b].Cos }
	if len(t.h) < t.k {
		t.h = append(t.h, c)
		for j := len(t.h) - 1; j > 0 && less(j, (j-1)/2); j = (j - 1) / 2 {
			t.h[j], t.h[(j-1)/2] = t.h[(j-1)/2], t.h[j]
		}
		return
	}
	if c.Cos <= t.h[0].Cos {
		return
	}
	t.h[0] = c
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(t.h) && less(l, m) {
			m = l
		}
		if r := l + 1; r < len(t.h) && less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// sorted is the kept hits, best first.
func (t *topK) sorted() []truthHit {
	out := slices.Clone(t.h)
	slices.SortFunc(out, func(a, b truthHit) int { return cmp.Or(cmp.Compare(b.Cos, a.Cos), cmp.Compare(a.I, b.I)) })
	return out
}

// benchFill is what the filler wrote, kept next to the store: a store is
// reused only when its files are those the fill wrote, and the exact scan
// of a reused store is the one made when it was filled.
type benchFill struct {
	Version  int          `json:"version"`
	Frames   int          `json:"frames"`
	Dim      int          `json:"dim"`
	Segments int          `json:"segments"`
	Bytes    int64        `json:"bytes"` // all .emb files
	Truth    [][]truthHit `json:"truth"` // per query, the exact scan's best benchTruthK
	Seconds  float64      `json:"seconds"`
}

// fillBenchStore writes the store's segment files as the writer would have
// (same header and records; no thumbnails), one hour a segment, several
// segments at a time, in big buffered writes; and, as it goes, the exact
// float32 scan of every query: the cosine summed in float64 in the order
// the store's dot sums it, so that the two agree to the last bit.
func fillBenchStore(b *testing.B, dir string, set *benchSet) benchFill {
	start := time.Now()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	// Segments and their first frames.
	var firsts []int
	for i := range benchFrames {
		if i == 0 || benchSeq(i) != benchSeq(i-1) {
			firsts = append(firsts, i)
		}
	}
	firsts = append(firsts, benchFrames)
	qs := make([][]float64, len(set.queries))
	for q, v := range set.queries {
		qs[q] = make([]float64, benchDim)
		for j, x := range v {
			qs[q][j] = float64(x)
		}
	}
	jobs := make(chan int)
	var mu sync.Mutex
	var errs []error
	var bytes int64
	tops := make([]topK, len(qs))
	for q := range tops {
		tops[q].k = benchTruthK
	}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			local := make([]topK, len(qs))
			for q := range local {
				local[q].k = benchTruthK
			}
			pcg := &rand.PCG{}
			rng := rand.New(pcg)
			x := make([]float32, benchDim)
			xf := make([]float64, benchDim)
			for s := range jobs {
				n, err := writeBenchSegment(dir, set, firsts[s], firsts[s+1], pcg, rng, x, xf, qs, local)
				mu.Lock()
				bytes += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
			mu.Lock()
			for q := range local {
				for _, h := range local[q].h {
					tops[q].push(h)
				}
			}
			mu.Unlock()
		})
	}
	for s := range len(firsts) - 1 {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("filling the bench store: %v", err)
	}
	fill := benchFill{Version: benchFillVersion, Frames: benchFrames, Dim: benchDim, Segments: len(firsts) - 1, Bytes: bytes,
		Seconds: time.Since(start).Seconds()}
	for q := range tops {
		fill.Truth = append(fill.Truth, tops[q].sorted())
	}
	return fill
}

// writeBenchSegment writes frames [from, to) as one segment, and scores
// them against every query into tops.
func writeBenchSegment(dir string, set *benchSet, from, to int, pcg *rand.PCG, rng *rand.Rand, x []float32, xf []float64, qs [][]float64, tops []topK) (int64, error) {
	seq := benchSeq(from)
	f, err := os.OpenFile(embPath(dir, seq), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	w.Write(header(benchModelKey, benchDim))
	buf := make([]byte, 0, 4<<10)
	for i := from; i < to; i++ {
		set.frame(x, i, pcg, rng)
		r := &record{reason: Every, camera: benchCameras[i%len(benchCameras)], time: benchTime(i).UnixNano(),
			crop: image.Rect(0, 0, 640, 360), width: 640, height: 360, embedding: encodeEmbedding(x)}
		buf = appendRecord(buf[:0], r)
		if _, err := w.Write(buf); err != nil {
			return 0, fmt.Errorf("segment %d: %w", seq, err)
		}
		for j, v := range x {
			xf[j] = float64(v)
		}
		scoreAll(xf, qs, i, tops)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("segment %d: %w", seq, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("segment %d: %w", seq, err)
	}
	if err := os.WriteFile(jpgPath(dir, seq), nil, 0o600); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// scoreAll is the exact scan's step for one frame: four queries at a time,
// each summed in index order (as dot does), so the four sums run side by
// side instead of waiting on one another.
func scoreAll(x []float64, qs [][]float64, i int, tops []topK) {
	q := 0
	for ; q+4 <= len(qs); q += 4 {
		a, b, c, d := qs[q][:len(x)], qs[q+1][:len(x)], qs[q+2][:len(x)], qs[q+3][:len(x)]
		var sa, sb, sc, sd float64
		for j, v := range x {
			sa += a[j] * v
			sb += b[j] * v
			sc += c[j] * v
			sd += d[j] * v
		}
		tops[q].push(truthHit{i, sa})
		tops[q+1].push(truthHit{i, sb})
		tops[q+2].push(truthHit{i, sc})
		tops[q+3].push(truthHit{i, sd})
	}
	for ; q < len(qs); q++ {
		var s float64
		for j, v := range x {
			s += qs[q][j] * v
		}
		tops[q].push(truthHit{i, s})
	}
}

// benchStore returns the store folder and its fill: the cached one under
// .deps/bench/framestore-1m when it is what this generator writes, else a
// new fill there (skipped when the disk has too little room).
func benchStore(b *testing.B, set *benchSet) (string, benchFill) {
	root := filepath.Join(testenv.RepoRoot(b), ".deps", "bench", "framestore-1m")
	dir, marker := filepath.Join(root, "store"), filepath.Join(root, "fill.json")
	if fill, ok := cachedFill(dir, marker); ok {
		b.Logf("reusing the filled store in %s", root)
		return dir, fill
	}
	// The marker goes first and last: a fill cut short leaves none.
	os.Remove(marker)
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		b.Fatal(err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil {
		b.Fatal(err)
	}
	if free := int64(fs.Bavail) * fs.Bsize; free < benchMinFree {
		b.Skipf("skipping: %s has %.1f GB free, the 1 M-frame store needs %d GB (it takes about 3.2 GB)",
			root, float64(free)/1e9, benchMinFree>>30)
	}
	b.Logf("filling %s with %d frames (once; later runs reuse it)", dir, benchFrames)
	fill := fillBenchStore(b, dir, set)
	raw, err := json.Marshal(fill)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir, fill
}

// cachedFill reads the marker of an earlier fill and checks that the
// folder holds the segments it wrote, at their sizes.
func cachedFill(dir, marker string) (benchFill, bool) {
	raw, err := os.ReadFile(marker)
	if err != nil {
		return benchFill{}, false
	}
	var fill benchFill
	if json.Unmarshal(raw, &fill) != nil || fill.Version != benchFillVersion || fill.Frames != benchFrames ||
		fill.Dim != benchDim || len(fill.Truth) != benchQueries {
		return benchFill{}, false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return benchFill{}, false
	}
	var segs int
	var bytes int64
	for _, e := range entries {
		if _, ok := parseSeq(e.Name()); !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return benchFill{}, false
		}
		segs++
		bytes += fi.Size()
	}
	return fill, segs == fill.Segments && bytes == fill.Bytes
}

// quantiles are a latency list's p50, p95 and max in ms.
func quantiles(d []time.Duration) (p50, p95, most float64) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) float64 {
		return float64(s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]) / 1e6
	}
	return at(0.50), at(0.95), float64(s[len(s)-1]) / 1e6
}

// BenchmarkSearch1M searches a store of 1,000,000 frames (dim 768, four
// cameras, a week) with 100 queries, each by Search (limit 20, a floor
// that a few hundred frames pass) and by Top(q, 20), and checks that Top's
// 20 frames are the exact float32 scan's, in its order. It reports the
// latencies (p50, p95, max), what the open store holds in Go heap, its
// disk bytes and how long Open took to load it. Run it once:
//
//	go test -run '^$' -bench Search1M -benchtime 1x -timeout 30m ./daemon/framestore
//
// The first run fills .deps/bench/framestore-1m (about 3.2 GB; embeddings,
// no thumbnails); later runs reuse it. With $SIGLIPD_BENCH_OUT set it
// appends its figures to that file as a Markdown section.
func BenchmarkSearch1M(b *testing.B) {
	set := newBenchSet()
	dir, fill := benchStore(b, set)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	s, err := Open(Options{Dir: dir, MaxSize: 1 << 40, ModelKey: benchModelKey, Dim: benchDim,
		Now: func() time.Time { return benchStart.Add(benchSpan) }})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.WaitLoaded()
	openTime := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	st := s.Stats()
	if st.Frames != benchFrames || st.Searchable != benchFrames || st.Corrupt != 0 {
		b.Fatalf("the bench store opened with %+v, want %d searchable frames", st, benchFrames)
	}

	score := func(cos float64) float64 { return float64(float32(1 / (1 + math.Exp(-(benchScale*cos + benchBias))))) }
	var search, top []time.Duration
	b.ResetTimer()
	for range b.N {
		search, top = search[:0], top[:0]
		for q, v := range set.queries {
			truth := fill.Truth[q]
			t := time.Now()
			res, err := s.Search(Query{Vector: v, Score: score, Floor: score(truth[benchFloorRank].Cos), Limit: 20, Gap: 2 * time.Minute})
			search = append(search, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Moments) == 0 || res.Searched != benchFrames {
				b.Fatalf("query %d: Search found %d moments in %d frames", q, len(res.Moments), res.Searched)
			}
			t = time.Now()
			hits, err := s.Top(Query{Vector: v}, 20)
			top = append(top, time.Since(t))
			if err != nil {
				b.Fatal(err)
			}
			if len(hits) != 20 {
				b.Fatalf("query %d: Top gave %d frames", q, len(hits))
			}
			for k, h := range hits {
				want := truth[k]
				// A tie in the exact scan may come in either order.
				if i := benchIndex(h.Time); i != want.I && h.Score != want.Cos {
					b.Fatalf("query %d rank %d: Top has frame %d (cos %.9f), the exact scan frame %d (cos %.9f)",
						q, k, i, h.Score, want.I, want.Cos)
				}
				if d := math.Abs(h.Score - want.Cos); d > 1e-12 {
					b.Fatalf("query %d rank %d: Top's cos %.12f, the exact scan's %.12f", q, k, h.Score, want.Cos)
				}
			}
		}
	}
	b.StopTimer()

	sp50, sp95, smax := quantiles(search)
	tp50, tp95, tmax := quantiles(top)
	b.ReportMetric(sp50, "search-p50-ms")
	b.ReportMetric(sp95, "search-p95-ms")
	b.ReportMetric(smax, "search-max-ms")
	b.ReportMetric(tp50, "top-p50-ms")
	b.ReportMetric(tp95, "top-p95-ms")
	b.ReportMetric(tmax, "top-max-ms")
	b.ReportMetric(openTime.Seconds(), "open-s")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(heap)/benchFrames, "heap-B/frame")
	b.ReportMetric(float64(st.Bytes)/(1<<20), "disk-MiB")
	b.ReportMetric(0, "ns/op") // the figures above are the result, not the loop's time

	if p := os.Getenv("SIGLIPD_BENCH_OUT"); p != "" {
		var w strings.Builder
		fmt.Fprintf(&w, "\nFrame store search, 1 M frames (BenchmarkSearch1M: dim %d, %d cameras over %d days, %d scenes; %d queries; "+
			"int8 scan on %d workers, then an exact re-score of every frame it cannot rule out)\n\n",
			benchDim, len(benchCameras), int(benchSpan/(24*time.Hour)), benchCentres, benchQueries, s.opts.Workers)
		fmt.Fprintf(&w, "| call | p50 ms | p95 ms | max ms |\n|---|---|---|---|\n")
		fmt.Fprintf(&w, "| Search (limit 20, moments) | %.1f | %.1f | %.1f |\n", sp50, sp95, smax)
		fmt.Fprintf(&w, "| Top(q, 20) | %.1f | %.1f | %.1f |\n", tp50, tp95, tmax)
		fmt.Fprintf(&w, "\nTop's 20 = the exact float32 scan's 20, in order, for all %d queries. Open (load %d segments): %.1f s. "+
			"Go heap of the open store: %.0f MiB, %.0f bytes a frame. On disk: %.0f MiB of embeddings (thumbnails not included).\n",
			benchQueries, fill.Segments, openTime.Seconds(), float64(heap)/(1<<20), float64(heap)/benchFrames, float64(st.Bytes)/(1<<20))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = f.WriteString(w.String())
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			b.Error(err)
		}
	}
}
