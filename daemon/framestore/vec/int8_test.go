package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantize(t *testing.T) {
	for _, c := range []struct {
		name      string
		x         []float32
		wantScale float32
		wantQ     []int8
	}{
		{"empty", nil, 0, nil},
		{"all zero", []float32{0, 0, 0}, 0, []int8{0, 0, 0}},
		{"negative zero", []float32{float32(math.Copysign(0, -1)), 0}, 0, []int8{0, 0}},
		{"one value", []float32{0.5}, 0.5 / 127, []int8{127}},
		{"negative largest", []float32{-2, 1, 0}, 2.0 / 127, []int8{-127, 64, 0}}, // 63.5 rounds away from zero
		{"steps", []float32{127, 1.4, 1.6, -1.5, -0.4}, 1, []int8{127, 1, 2, -2, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := make([]int8, len(c.x))
			for i := range q {
				q[i] = 99 // must be overwritten, also for a zero vector
			}
			if s := Quantize(q, c.x); s != c.wantScale {
				t.Errorf("scale %v, want %v", s, c.wantScale)
			}
			if !slices.Equal(q, c.wantQ) {
				t.Errorf("q %v, want %v", q, c.wantQ)
			}
		})
	}
}

// TestQuantizeRandom: on random unit vectors the largest magnitude maps to
// ±127, nothing to -128, and Dequantize is within half a step everywhere.
func TestQuantizeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dim := range []int{1, 3, 17, 768, 1152} {
		x := randomUnit(rng, dim)
		q := make([]int8, dim)
		s := Quantize(q, x)
		back := make([]float32, dim)
		Dequantize(back, q, s)
		top := 0
		for j := range x {
			if math.Abs(float64(x[j])) > math.Abs(float64(x[top])) {
				top = j
			}
			if q[j] == -128 {
				t.Errorf("dim %d: q[%d] = -128", dim, j)
			}
			if d := math.Abs(float64(back[j] - x[j])); d > float64(s)/2*(1+1e-6) {
				t.Errorf("dim %d: x[%d] = %v comes back as %v, %v off, half a step is %v", dim, j, x[j], back[j], d, s/2)
			}
		}
		if q[top] != 127 && q[top] != -127 {
			t.Errorf("dim %d: largest value %v quantized to %d", dim, x[top], q[top])
		}
	}
}

func randomUnit(rng *rand.Rand, dim int) []float32 {
	x := make([]float32, dim)
	var n float64
	for j := range x {
		v := rng.NormFloat64()
		x[j] = float32(v)
		n += v * v
	}
	n = math.Sqrt(n)
	for j := range x {
		x[j] = float32(float64(x[j]) / n)
	}
	return x
}

func randomInt8(rng *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(rng.Uint32())
	}
	return v
}

// TestDotInt8 compares the C kernel with dotInt8Go on random bytes (all of
// -128…127), at the odd widths where a vectorized loop's tail goes wrong,
// and with no vectors at all.
func TestDotInt8(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type tc struct {
		name    string
		q, data []int8
		dim     int
	}
	var cases []tc
	for _, dim := range []int{1, 3, 17, 31, 64, 768, 1152} {
		for _, n := range []int{0, 1, 5, 33} {
			cases = append(cases, tc{fmt.Sprintf("dim %d, %d vectors", dim, n), randomInt8(rng, dim), randomInt8(rng, n*dim), dim})
		}
	}
	cases = append(cases, tc{"MaxDim", randomInt8(rng, MaxDim), randomInt8(rng, 3*MaxDim), MaxDim})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.data) / c.dim
			want := make([]int32, n)
			dotInt8Go(c.q, c.data, c.dim, want)
			got := make([]int32, n)
			for i := range got {
				got[i] = -1
			}
			DotInt8(c.q, c.data, c.dim, got)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestDotInt8Largest pins the largest sum the kernel can meet, MaxDim
// products of (-128)², as a number: dotInt8Go would wrap the same way if
// int32 overflowed, so comparing with it alone would not show one.
func TestDotInt8Largest(t *testing.T) {
	data := make([]int8, 2*MaxDim)
	for i := range data {
		data[i] = -128
	}
	out := make([]int32, 2)
	DotInt8(data[:MaxDim], data, MaxDim, out)
	if want := int32(MaxDim * 128 * 128); out[0] != want || out[1] != want {
		t.Errorf("got %v, want %d twice", out, want)
	}
}

// TestScan: any number of workers gives the single call's result, including
// more workers than vectors, no vectors, and workers ≤ 0.
func TestScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim = 17
	for _, n := range []int{0, 1, 2, 3, 10, 1001} {
		q, data := randomInt8(rng, dim), randomInt8(rng, n*dim)
		want := make([]int32, n)
		dotInt8Go(q, data, dim, want)
		for _, workers := range []int{-1, 0, 1, 2, 3, 7, 64} {
			got := make([]int32, n)
			for i := range got {
				got[i] = -1
			}
			Scan(q, data, dim, got, workers)
			if !slices.Equal(got, want) {
				t.Errorf("%d vectors, %d workers: differs from dotInt8Go", n, workers)
			}
		}
	}
}

func TestDotInt8Panics(t *testing.T) {
	for _, c := range []struct {
		name string
		q    []int8
		data []int8
		dim  int
		out  []int32
	}{
		{"dim 0", nil, nil, 0, nil},
		{"dim above MaxDim", make([]int8, MaxDim+1), make([]int8, MaxDim+1), MaxDim + 1, make([]int32, 1)},
		{"query shorter than dim", make([]int8, 3), make([]int8, 8), 4, make([]int32, 2)},
		{"data not out × dim", make([]int8, 4), make([]int8, 9), 4, make([]int32, 2)},
	} {
		for fn, f := range map[string]func(){
			"DotInt8": func() { DotInt8(c.q, c.data, c.dim, c.out) },
			"Scan":    func() { Scan(c.q, c.data, c.dim, c.out, 2) },
		} {
			t.Run(fn+" "+c.name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Error("no panic")
					}
				}()
				f()
			})
		}
	}
}

// TestDotF16 compares the on-the-fly re-score with decoding first and
// summing in float64: the same sum, so equal to float32 rounding.
func TestDotF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dim := range []int{1, 3, 17, 768, 1152} {
		q, x := randomUnit(rng, dim), randomUnit(rng, dim)
		src := make([]byte, 2*dim)
		EncodeF16(src, x)
		dec := make([]float32, dim)
		DecodeF16(dec, src)
		var want float64
		for j := range q {
			want += float64(q[j]) * float64(dec[j])
		}
		if got := DotF16(q, src); got != float32(want) {
			t.Errorf("dim %d: %v, want %v", dim, got, float32(want))
		}
	}
}
