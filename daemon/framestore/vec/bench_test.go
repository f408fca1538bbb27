package vec

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// randomSlab is n·dim int8 drawn from -127…127 (what Quantize produces),
// filled a word at a time: the 768 MB slab of BenchmarkScan1M768 would
// otherwise take longer to fill than to measure.
func randomSlab(n int) []int8 {
	s := make([]int8, n)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := 0; i < n; i += 8 {
		w := rng.Uint64()
		for k := i; k < min(i+8, n); k++ {
			s[k] = int8(w)
			if s[k] == -128 {
				s[k] = -127
			}
			w >>= 8
		}
	}
	return s
}

// BenchmarkScan1M768 is the text search's coarse pass at the frame store's
// design size: one query against 1,000,000 stored int8 vectors of SigLIP
// base's width, per worker count.
func BenchmarkScan1M768(b *testing.B) {
	const n, dim = 1_000_000, 768
	data := randomSlab(n * dim) // once for every sub-benchmark
	q := randomSlab(dim)
	out := make([]int32, n)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(n * dim)
			for b.Loop() { // b.Loop starts the timer at its first call: the slab's filling is not timed
				Scan(q, data, dim, out, workers)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}

// BenchmarkDotInt8 and BenchmarkDotInt8Go score the same 10,000 vectors:
// the C kernel against the plain Go loop it replaces.
func BenchmarkDotInt8(b *testing.B)   { benchDot(b, DotInt8) }
func BenchmarkDotInt8Go(b *testing.B) { benchDot(b, dotInt8Go) }

func benchDot(b *testing.B, dot func([]int8, []int8, int, []int32)) {
	const n, dim = 10_000, 768
	data, q, out := randomSlab(n*dim), randomSlab(dim), make([]int32, n)
	b.SetBytes(n * dim)
	for b.Loop() {
		dot(q, data, dim, out)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
}

// BenchmarkDecodeF16 decodes one stored frame of SigLIP base's width, as
// loading the frame store from disk does for every frame.
func BenchmarkDecodeF16(b *testing.B) {
	const dim = 768
	rng := rand.New(rand.NewPCG(11, 12))
	src := make([]byte, 2*dim)
	EncodeF16(src, randomUnit(rng, dim))
	dst := make([]float32, dim)
	b.SetBytes(2 * dim)
	for b.Loop() {
		DecodeF16(dst, src)
	}
}

// BenchmarkDotF16 is the exact re-score of one candidate frame.
func BenchmarkDotF16(b *testing.B) {
	const dim = 768
	rng := rand.New(rand.NewPCG(13, 14))
	q := randomUnit(rng, dim)
	src := make([]byte, 2*dim)
	EncodeF16(src, randomUnit(rng, dim))
	b.SetBytes(2 * dim)
	var sink float32
	for b.Loop() {
		sink += DotF16(q, src)
	}
	_ = sink
}
