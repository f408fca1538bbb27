package vec

import "math"

// temporary stub until the helper's package lands
func Quantize(dst []int8, x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	if m == 0 {
		clear(dst)
		return 0
	}
	s := m / 127
	for i, v := range x {
		dst[i] = int8(math.Round(float64(v / s)))
	}
	return s
}
func DotInt8(q, data []int8, dim int, out []int32) {
	for i := range out {
		var s int32
		for j, a := range q {
			s += int32(a) * int32(data[i*dim+j])
		}
		out[i] = s
	}
}
func EncodeF16(dst []byte, x []float32) {
	for i, v := range x {
		h := f32to16(v)
		dst[2*i], dst[2*i+1] = byte(h), byte(h>>8)
	}
}
func DecodeF16(dst []float32, b []byte) {
	for i := range dst {
		dst[i] = f16to32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
}
func DotF16(q []float32, b []byte) float32 {
	var s float64
	for i := range q {
		s += float64(q[i]) * float64(f16to32(uint16(b[2*i])|uint16(b[2*i+1])<<8))
	}
	return float32(s)
}
func f32to16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	man := b & 0x7fffff
	if exp <= 0 {
		return sign
	}
	if exp >= 31 {
		return sign | 0x7c00
	}
	return sign | uint16(exp)<<10 | uint16(man>>13)
}
func f16to32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	if exp == 0 {
		return math.Float32frombits(sign) + float32(man)*float32(math.Ldexp(1, -24))*sign32(sign)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | man<<13)
}
func sign32(s uint32) float32 {
	if s != 0 {
		return -1
	}
	return 1
}
