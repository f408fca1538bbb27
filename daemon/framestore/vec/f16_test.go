package vec

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestF16RoundTrip decodes every one of the 65536 halves and encodes it
// again: each must come back bit for bit (NaN payloads included), and NaNs
// must decode to NaN.
func TestF16RoundTrip(t *testing.T) {
	src := make([]byte, 2*65536)
	for h := range 65536 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	f := make([]float32, 65536)
	DecodeF16(f, src)
	back := make([]byte, len(src))
	EncodeF16(back, f)
	for h := range 65536 {
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		if got := math.IsNaN(float64(f[h])); got != isNaN {
			t.Errorf("half %#04x decodes to %v: NaN %v, want %v", h, f[h], got, isNaN)
		}
		if got := uint16(back[2*h]) | uint16(back[2*h+1])<<8; got != uint16(h) {
			t.Errorf("half %#04x → %v → %#04x", h, f[h], got)
		}
	}
}

// TestDecodeF16Values pins the decoded value of the halves whose layout is
// easiest to get wrong.
func TestDecodeF16Values(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float64
	}{
		{0x0000, 0},
		{0x0001, 0x1p-24}, // smallest subnormal
		{0x03ff, 1023 * 0x1p-24},
		{0x0400, 0x1p-14}, // smallest normal
		{0x3c00, 1},
		{0x3c01, 1 + 0x1p-10},
		{0xc000, -2},
		{0x7bff, 65504},
		{0x7c00, math.Inf(1)},
		{0xfc00, math.Inf(-1)},
	} {
		var f [1]float32
		DecodeF16(f[:], []byte{byte(c.h), byte(c.h >> 8)})
		if float64(f[0]) != c.want {
			t.Errorf("half %#04x decodes to %v, want %v", c.h, f[0], c.want)
		}
	}
	var f [1]float32
	DecodeF16(f[:], []byte{0x00, 0x80})
	if f[0] != 0 || !math.Signbit(float64(f[0])) {
		t.Errorf("half 0x8000 decodes to %v, want -0", f[0])
	}
}

// refF16 is the binary16 nearest to x by definition: the candidates are the
// 31744 finite non-negative halves plus 0x7c00 standing for 2^16 (the next
// step after 65504, which is where IEEE 754 rounds to infinity), compared
// exactly with math/big; a tie goes to the even encoding.
type refF16 struct {
	vals []*big.Float // vals[h] for h in 0…0x7c00
}

func newRefF16() *refF16 {
	r := &refF16{vals: make([]*big.Float, 0x7c01)}
	for h := range 0x7c00 {
		e, m := h>>10, int64(h&0x3ff)
		var v *big.Float
		if e == 0 {
			v = new(big.Float).SetMantExp(big.NewFloat(float64(m)), -24)
		} else {
			v = new(big.Float).SetMantExp(big.NewFloat(float64(1024+m)), e-25)
		}
		r.vals[h] = v
	}
	r.vals[0x7c00] = new(big.Float).SetMantExp(big.NewFloat(1), 16)
	return r
}

func (r *refF16) encode(x float32) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	if math.IsInf(a, 1) {
		return sign | 0x7c00
	}
	if a >= 65536 {
		return sign | 0x7c00
	}
	xb := new(big.Float).SetFloat64(a)
	// The first candidate ≥ x.
	lo, hi := 0, 0x7c00
	for lo < hi {
		mid := (lo + hi) / 2
		if r.vals[mid].Cmp(xb) >= 0 {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == 0 || r.vals[lo].Cmp(xb) == 0 {
		return sign | uint16(lo)
	}
	below, above := lo-1, lo
	dBelow := new(big.Float).SetPrec(1000).Sub(xb, r.vals[below])
	dAbove := new(big.Float).SetPrec(1000).Sub(r.vals[above], xb)
	switch c := dBelow.Cmp(dAbove); {
	case c < 0:
		return sign | uint16(below)
	case c > 0:
		return sign | uint16(above)
	case below%2 == 0:
		return sign | uint16(below)
	default:
		return sign | uint16(above)
	}
}

// TestEncodeF16Rounding checks EncodeF16 against refF16 where rounding is
// decided: at every midpoint between adjacent halves (the ties), one
// float32 step either side of it, at every half itself, at the edges of the
// range, and at random float32 bit patterns, all with both signs.
func TestEncodeF16Rounding(t *testing.T) {
	ref := newRefF16()
	var xs []float32
	for h := range 0x7c00 {
		lo, _ := ref.vals[h].Float64()
		hi, _ := ref.vals[h+1].Float64()
		mid := float32((lo + hi) / 2) // exact: a midpoint needs 12 significant bits
		xs = append(xs, float32(lo), mid,
			math.Nextafter32(mid, 0), math.Nextafter32(mid, math.MaxFloat32))
	}
	xs = append(xs, 0, math.SmallestNonzeroFloat32, 0x1p-26, 0x1p-25, 3*0x1p-26, 0x1p-24,
		65504, 65519.996, 65520, 65536, 1e9, math.MaxFloat32, float32(math.Inf(1)))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		x := math.Float32frombits(rng.Uint32())
		if !math.IsNaN(float64(x)) {
			xs = append(xs, x)
		}
	}
	in := make([]float32, 0, 2*len(xs))
	for _, x := range xs {
		in = append(in, x, -x)
	}
	out := make([]byte, 2*len(in))
	EncodeF16(out, in)
	bad := 0
	for i, x := range in {
		got := uint16(out[2*i]) | uint16(out[2*i+1])<<8
		if want := ref.encode(x); got != want {
			if bad++; bad <= 20 {
				t.Errorf("EncodeF16(%g = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d wrong in all", bad)
	}
}

// TestEncodeF16NaN: every NaN, including those whose payload lives only in
// the low bits a half drops, must encode to a NaN of the same sign.
func TestEncodeF16NaN(t *testing.T) {
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0x7f801fff, 0x7fffffff, 0xffc00000, 0xff800001} {
		var out [2]byte
		EncodeF16(out[:], []float32{math.Float32frombits(bits)})
		h := uint16(out[0]) | uint16(out[1])<<8
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || h>>15 != uint16(bits>>31) {
			t.Errorf("NaN %#08x encodes to %#04x, not a NaN of the same sign", bits, h)
		}
	}
}

func TestF16LengthsPanic(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"EncodeF16 short dst", func() { EncodeF16(make([]byte, 3), make([]float32, 2)) }},
		{"DecodeF16 long src", func() { DecodeF16(make([]float32, 2), make([]byte, 6)) }},
		{"DotF16 short src", func() { DotF16(make([]float32, 2), make([]byte, 2)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			c.f()
		})
	}
}
