package vec

import (
	"cmp"
	"flag"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// SigLIP 2 base's logit scale and bias: what a cosine error means as a
// probability, sigmoid(scale·cos + bias).
const (
	siglipScale = 117.33
	siglipBias  = -12.93
)

// The scenario of TestQuantizedTopK, changeable from the command line to
// explore where the plan's K stops sufficing (docs/measurements.md), e.g.
// go test ./daemon/framestore/vec -run TopK -v -args -topk.noise=0.02 -topk.per-cluster=1000
var (
	topkClusters   = flag.Int("topk.clusters", 2000, "TestQuantizedTopK: clusters of frames (a tenth of it with -short)")
	topkPerCluster = flag.Int("topk.per-cluster", 100, "TestQuantizedTopK: frames per cluster")
	topkNoise      = flag.Float64("topk.noise", 0.2, "TestQuantizedTopK: norm of a frame's noise around its centre")
	topkK          = flag.Int("topk.k", 256, "TestQuantizedTopK: int8 candidates re-scored per query")
)

// frames is a frame store in the three precisions: the float32 originals
// (the truth), float16 as on disk, int8 with a scale per vector as in memory.
type frames struct {
	n, dim int
	f32    []float32
	f16    []byte
	i8     []int8
	scale  []float32
}

// clusteredFrames builds clusters·perCluster unit vectors the way camera
// frames fall: around each of the clusters centres (one camera, one
// scene), every member is the centre plus Gaussian noise of norm about
// noise, renormalized, so members of a cluster score almost alike against
// any query. Each cluster draws from its own seeded source, so the store
// is the same however the work is split.
func clusteredFrames(clusters, perCluster, dim int, noise float64) (fr frames, centres [][]float32) {
	n := clusters * perCluster
	fr = frames{n: n, dim: dim, f32: make([]float32, n*dim), f16: make([]byte, 2*n*dim),
		i8: make([]int8, n*dim), scale: make([]float32, n)}
	centres = make([][]float32, clusters)
	parallel(clusters, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			rng := rand.New(rand.NewPCG(42, uint64(c)))
			centres[c] = randomUnit(rng, dim)
			for m := range perCluster {
				i := c*perCluster + m
				x := fr.f32[i*dim : (i+1)*dim]
				perturb(rng, x, centres[c], noise)
				EncodeF16(fr.f16[2*i*dim:2*(i+1)*dim], x)
				fr.scale[i] = Quantize(fr.i8[i*dim:(i+1)*dim], x)
			}
		}
	})
	return fr, centres
}

// perturb sets dst to centre plus Gaussian noise of norm about noise,
// normalized to unit length.
func perturb(rng *rand.Rand, dst, centre []float32, noise float64) {
	sd := noise / math.Sqrt(float64(len(dst)))
	var norm float64
	for j, c := range centre {
		v := float64(c) + sd*rng.NormFloat64()
		dst[j] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	for j := range dst {
		dst[j] = float32(float64(dst[j]) / norm)
	}
}

// parallel runs f over [0, n) split into one contiguous share per CPU.
func parallel(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { f(w*n/workers, (w+1)*n/workers) })
	}
	wg.Wait()
}

// ranked returns the ids ordered by score, highest first, ties by id.
func ranked(scores []float64) []int {
	ids := make([]int, len(scores))
	for i := range ids {
		ids[i] = i
	}
	slices.SortFunc(ids, func(a, b int) int {
		return cmp.Or(cmp.Compare(scores[b], scores[a]), cmp.Compare(a, b))
	})
	return ids
}

// rescore is the caller's second pass: the candidates ordered by score,
// highest first, ties by id, cut to the best top.
func rescore(candidates []int, top int, score func(id int) float64) []int {
	scores := make(map[int]float64, len(candidates))
	for _, id := range candidates {
		scores[id] = score(id)
	}
	ids := slices.Clone(candidates)
	slices.SortFunc(ids, func(a, b int) int {
		return cmp.Or(cmp.Compare(scores[b], scores[a]), cmp.Compare(a, b))
	})
	return ids[:min(top, len(ids))]
}

// TestQuantizedTopK checks the frame store's search plan against an exact
// scan of the float32 originals: an int8 scan of every frame keeps the best
// K = 256 candidates, an exact re-score of those picks the top 20.
//
// The frames come in tight clusters (one camera, one scene), so the top 20
// are near-ties. Half the queries are random directions (a text query is
// far from every image: its best cosines are small), half a perturbed
// cluster centre (a query close to one scene).
//
// What it asserts, per query:
//   - the int8 top K holds every frame of the exact top 20, so re-scoring
//     the candidates from float32 gives the exact top 20, same ids, same
//     order;
//   - re-scored from float16 (the plan's storage on disk), the top 20 can
//     only differ where float16 cannot tell frames apart: at each place,
//     the frame it gives and the exact one score within twice float16's
//     largest error of each other. Near-ties are closer than float16's
//     error, so the order there does differ; the log counts how often.
//
// It logs the largest cosine error of int8 and of float16 against float32
// over every query × frame, what that is as a probability under SigLIP 2
// base's scale and bias at worst (at the decision threshold, where sigmoid
// is steepest), and the smallest K that would have held every exact top 20.
func TestQuantizedTopK(t *testing.T) {
	const (
		dim        = 768
		queryNoise = 0.5
		queries    = 20
		top        = 20
	)
	// By default cos(frame, centre) ≈ 0.98: 100 views of a scene.
	clusters, perCluster, noise, k := *topkClusters, *topkPerCluster, *topkNoise, *topkK
	if testing.Short() {
		clusters = max(1, clusters/10)
	}
	fr, centres := clusteredFrames(clusters, perCluster, dim, noise)
	n := fr.n

	rng := rand.New(rand.NewPCG(43, 0))
	exact := make([]float64, n)
	coarse := make([]float64, n)
	fine := make([]float64, n)
	out := make([]int32, n)
	qi8 := make([]int8, dim)
	var errInt8, errF16 float64
	neededK, f16Differs, f16SetDiffers := 0, 0, 0
	for qn := range queries {
		var q []float32
		kind := "random"
		if qn%2 == 1 {
			kind = "near a centre"
			q = make([]float32, dim)
			perturb(rng, q, centres[rng.IntN(clusters)], queryNoise)
		} else {
			q = randomUnit(rng, dim)
		}

		qs := float64(Quantize(qi8, q))
		Scan(qi8, fr.i8, dim, out, runtime.GOMAXPROCS(0))
		parallel(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				var s float64
				for j, v := range fr.f32[i*dim : (i+1)*dim] {
					s += float64(q[j]) * float64(v)
				}
				exact[i] = s
				coarse[i] = qs * float64(fr.scale[i]) * float64(out[i])
				fine[i] = float64(DotF16(q, fr.f16[2*i*dim:2*(i+1)*dim]))
			}
		})
		var errF16q float64
		for i := range n {
			errInt8 = max(errInt8, math.Abs(coarse[i]-exact[i]))
			errF16q = max(errF16q, math.Abs(fine[i]-exact[i]))
		}
		errF16 = max(errF16, errF16q)

		want := ranked(exact)[:top+1]
		byCoarse := ranked(coarse)
		rank := make(map[int]int, n)
		for r, id := range byCoarse {
			rank[id] = r
		}
		kq := 0 // the K this query needs: the worst int8 rank of a true top-20 frame
		for _, id := range want[:top] {
			kq = max(kq, rank[id]+1)
		}
		neededK = max(neededK, kq)
		gap := math.Inf(1)
		for r := range top {
			gap = min(gap, exact[want[r]]-exact[want[r+1]])
		}

		candidates := byCoarse[:min(k, n)]
		if got := rescore(candidates, top, func(id int) float64 { return exact[id] }); !slices.Equal(got, want[:top]) {
			t.Errorf("query %d (%s): int8 top %d re-scored from float32 gives %v, exact top %d is %v; this query needs K = %d",
				qn, kind, k, got, top, want[:top], kq)
		}
		got16 := rescore(candidates, top, func(id int) float64 {
			return float64(DotF16(q, fr.f16[2*id*dim:2*(id+1)*dim]))
		})
		swaps := 0
		for r, id := range got16 {
			if id == want[r] {
				continue
			}
			swaps++
			if d := math.Abs(exact[id] - exact[want[r]]); d > 2*errF16q {
				t.Errorf("query %d (%s): float16 re-score puts frame %d at place %d where float32 has frame %d, %.2e apart, beyond float16's error (2 × %.2e)",
					qn, kind, id, r+1, want[r], d, errF16q)
			}
		}
		if swaps > 0 {
			f16Differs++
		}
		sameSet := slices.Equal(slices.Sorted(slices.Values(got16)), slices.Sorted(slices.Values(want[:top])))
		if !sameSet {
			f16SetDiffers++
		}
		t.Logf("query %2d (%s): best cos %.4f, smallest gap in the top %d %.2e, needs K = %d; float16 re-score: %d places differ, same ids %v",
			qn, kind, exact[want[0]], top+1, gap, kq, swaps, sameSet)
	}
	t.Logf("%d frames of dim %d in %d clusters of %d, noise %g (cos to the centre ≈ %.4f), %d queries",
		n, dim, clusters, perCluster, noise, 1/math.Sqrt(1+noise*noise), queries)
	t.Logf("max |cos error| vs float32: int8 %.2e, float16 %.2e", errInt8, errF16)
	t.Logf("as max |Δprobability| (scale %.2f, bias %.2f, at cos %.3f): int8 %.4f, float16 %.5f",
		siglipScale, siglipBias, -siglipBias/siglipScale, worstDeltaP(errInt8), worstDeltaP(errF16))
	t.Logf("smallest K whose int8 candidates hold every exact top %d: %d (the test uses %d)", top, neededK, k)
	t.Logf("float16 re-score differs from float32 in order in %d of %d queries, in ids in %d", f16Differs, queries, f16SetDiffers)
}

// worstDeltaP is the largest change in sigmoid(scale·cos + bias) that a
// cosine error e can make: centred on the threshold, where the slope is
// steepest, it is sigmoid(scale·e/2) − sigmoid(−scale·e/2) = tanh(scale·e/4).
func worstDeltaP(e float64) float64 {
	return math.Tanh(siglipScale * e / 4)
}
