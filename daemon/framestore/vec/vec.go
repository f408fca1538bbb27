// Package vec is the embedding arithmetic of the frame store: per-vector
// int8 quantization for frames in memory, the int8 dot-product scan that
// finds a query's candidates among every stored frame, and the float16
// codec the store's precision was chosen against.
//
// Contract: every function is pure. Callers own every slice they pass;
// nothing is retained after a call returns, and nothing is allocated but
// Scan's goroutines. There is no package state, so calls are safe for concurrent use
// as long as no two of them write the same dst or out. Lengths that do not
// match are programming errors and panic, as copy's bounds would.
//
// What blocks: DotInt8 runs its whole chunk in one cgo call, which holds an OS
// thread and cannot be preempted or cancelled; Scan blocks until all of its
// workers' calls return. A caller that needs cancellation or bounded latency
// passes smaller chunks (the cgo call's fixed cost only matters for chunks of
// a few vectors).
//
// The plan these serve: each frame's embedding is held in memory as int8
// with one float32 scale (x ≈ scale·q); a query is quantized the same way,
// scored against every frame with DotInt8 (coarse: its error is far above
// the gaps between near-identical frames), and the best candidates are
// re-scored exactly. The store keeps float32 on disk for that re-score:
// TestQuantizedTopK and the float16 functions here measured what float16
// storage would cost (near-identical frames ordered differently from a
// float32 scan, up to 0.0012 in probability), which is why it does not.
// docs/measurements.md has the errors and the speed.
package vec

/*
#cgo CFLAGS: -O3
#include "dot.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// MaxDim is the longest vector DotInt8 and Scan take. It covers every SigLIP
// width (768 base, 1152 so400m) with room; the kernel widens the query into a
// stack buffer of this size, and int32 sums stay exact far beyond it (see
// dot.c).
const MaxDim = C.SIGLIPD_VEC_MAX_DIM

// EncodeF16 writes x as IEEE 754 binary16, little endian, two bytes per
// value, into dst, which must be 2·len(x) long. Rounding is to nearest, ties
// to even; values beyond the largest half (65504) round to infinity as the
// standard says (from 65520 up); values that underflow become subnormals or
// signed zero. NaN stays NaN, keeping the top bits of its payload.
func EncodeF16(dst []byte, x []float32) {
	if len(dst) != 2*len(x) {
		panic(fmt.Sprintf("vec.EncodeF16: dst has %d bytes, want 2·%d", len(dst), len(x)))
	}
	for i, v := range x {
		h := f32ToF16(v)
		dst[2*i] = byte(h)
		dst[2*i+1] = byte(h >> 8)
	}
}

// DecodeF16 reads len(dst) little-endian binary16 values from src, which must
// be 2·len(dst) bytes long. Every half has an exact float32, so decoding
// loses nothing; NaN payloads are kept.
func DecodeF16(dst []float32, src []byte) {
	if len(src) != 2*len(dst) {
		panic(fmt.Sprintf("vec.DecodeF16: src has %d bytes, want 2·%d", len(src), len(dst)))
	}
	for i := range dst {
		dst[i] = f16ToF32(uint16(src[2*i]) | uint16(src[2*i+1])<<8)
	}
}

// f32ToF16 rounds f to the nearest binary16, ties to even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff

	if exp == 0xff { // infinity or NaN
		if mant == 0 {
			return sign | 0x7c00
		}
		m := uint16(mant >> 13)
		if m == 0 {
			// The payload was only in bits a half cannot hold; without a
			// bit set it would read as infinity.
			m = 0x200
		}
		return sign | 0x7c00 | m
	}

	e := exp - 127 + 15 // the exponent re-biased for binary16
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// A subnormal half (or zero): |f| < 2^-14, counted in units of
		// 2^-24. Below 2^-25 even rounding up cannot reach the smallest
		// subnormal.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000 // float32 subnormals have e < -10: the implicit bit is there
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into 0x400, the smallest normal: still the right encoding
		}
		return sign | uint16(h)
	default:
		h := uint32(e)<<10 | mant>>13
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++ // a carry out of the mantissa raises the exponent; out of 0x7bff it makes 0x7c00, infinity
		}
		return sign | uint16(h)
	}
}

// f16ToF32 widens a binary16 to float32, exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // infinity or NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant units of 2^-24, a normal float32
		return math.Float32frombits(sign | math.Float32bits(float32(mant)*0x1p-24))
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// Quantize writes x as symmetric int8 into dst (same length) and returns the
// scale, so that x[j] ≈ scale·dst[j]: scale = max|x|/127 and each value is
// rounded to the nearest step (halves away from zero), so the largest
// magnitude maps to ±127 and -128 is never used. An all-zero x gives scale 0
// and zeros. x must be finite; for NaN or infinity the result is unspecified.
func Quantize(dst []int8, x []float32) (scale float32) {
	if len(dst) != len(x) {
		panic(fmt.Sprintf("vec.Quantize: dst has %d values, x %d", len(dst), len(x)))
	}
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	if m == 0 {
		clear(dst)
		return 0
	}
	// In float64 so that x/scale for the largest value comes out at
	// 127 ± a float64 rounding, never past 127.5.
	inv := 127 / float64(m)
	for j, v := range x {
		dst[j] = int8(math.Round(float64(v) * inv))
	}
	return m / 127
}

// Dequantize writes scale·q into dst (same length): the inverse of Quantize
// up to its rounding, for tests and diagnostics.
func Dequantize(dst []float32, q []int8, scale float32) {
	if len(dst) != len(q) {
		panic(fmt.Sprintf("vec.Dequantize: dst has %d values, q %d", len(dst), len(q)))
	}
	for j, v := range q {
		dst[j] = scale * float32(v)
	}
}

// DotInt8 sets out[i] = Σ_j q[j]·data[i·dim+j] for each of the len(out)
// vectors stored back to back in data, in one call into C (dot.c). len(q)
// must be dim, 1 ≤ dim ≤ MaxDim, and len(data) = len(out)·dim. The sums are
// exact: no overflow is possible at dim ≤ MaxDim.
func DotInt8(q []int8, data []int8, dim int, out []int32) {
	checkDot("DotInt8", q, data, dim, out)
	if len(out) == 0 {
		return
	}
	C.siglipd_dot_int8(
		(*C.int8_t)(unsafe.Pointer(&q[0])),
		(*C.int8_t)(unsafe.Pointer(&data[0])),
		C.int64_t(dim), C.int64_t(len(out)),
		(*C.int32_t)(unsafe.Pointer(&out[0])))
}

func checkDot(fn string, q []int8, data []int8, dim int, out []int32) {
	switch {
	case dim < 1 || dim > MaxDim:
		panic(fmt.Sprintf("vec.%s: dim %d outside 1…%d", fn, dim, MaxDim))
	case len(q) != dim:
		panic(fmt.Sprintf("vec.%s: query has %d values, dim is %d", fn, len(q), dim))
	case len(data) != len(out)*dim:
		panic(fmt.Sprintf("vec.%s: data has %d values, want %d vectors × %d", fn, len(data), len(out), dim))
	}
}

// dotInt8Go is what DotInt8 computes, in Go: the reference its tests compare
// the C kernel against, and the baseline its benchmark is measured against.
func dotInt8Go(q []int8, data []int8, dim int, out []int32) {
	for i := range out {
		v := data[i*dim : (i+1)*dim]
		var sum int32
		for j, x := range v {
			sum += int32(q[j]) * int32(x)
		}
		out[i] = sum
	}
}

// Scan is DotInt8 split over workers goroutines, each scoring a contiguous
// share of the vectors with one DotInt8 call; it returns when all are done.
// Workers below 1 count as 1, and there are never more workers than
// vectors. The caller's goroutine does one share itself.
func Scan(q []int8, data []int8, dim int, out []int32, workers int) {
	// Checked here, so that a bad call panics in the caller's goroutine
	// rather than crashing the process from a worker.
	checkDot("Scan", q, data, dim, out)
	n := len(out)
	workers = max(1, min(workers, n))
	if workers == 1 {
		DotInt8(q, data, dim, out)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { DotInt8(q, data[lo*dim:hi*dim], dim, out[lo:hi]) })
	}
	hi := n / workers
	DotInt8(q, data[:hi*dim], dim, out[:hi])
	wg.Wait()
}

// DotF16 is the exact score of one stored frame: the float32 query q against
// the binary16 vector in src (2·len(q) bytes), decoded on the fly.
//
// It accumulates in float64: the re-score exists to order candidates the
// int8 scan could not tell apart, and with float64 sums the only difference
// from an exact scan of the float32 originals is the float16 storage, not
// the summation order. At K candidates per query the cost is negligible.
func DotF16(q []float32, src []byte) float32 {
	if len(src) != 2*len(q) {
		panic(fmt.Sprintf("vec.DotF16: src has %d bytes, want 2·%d", len(src), len(q)))
	}
	var sum float64
	for j, a := range q {
		sum += float64(a) * float64(f16ToF32(uint16(src[2*j])|uint16(src[2*j+1])<<8))
	}
	return float32(sum)
}
