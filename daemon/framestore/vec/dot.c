#include "dot.h"

// The clones: gcc compiles the function once per listed target and the
// dynamic loader picks the best one the CPU has (an ifunc), so one binary
// runs on any x86-64 and uses AVX2 where present. ifunc needs glibc;
// elsewhere (musl, and arm64, where NEON is the baseline) the plain -O3 loop
// is the only one.
#if defined(__x86_64__) && defined(__GLIBC__)
#define SIGLIPD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIGLIPD_CLONES
#endif

// siglipd_dot_int8 sets out[i] to the dot product of q with the i-th of the
// n vectors of dim int8 each that start at data.
//
// The query is widened to int16 once, and each stored byte is widened to
// int16 before the multiply: gcc then sees a sum of int16 × int16 products
// into int32, which it turns into pmaddwd (8 or 16 products and pairwise sums
// per instruction). Written as int8 × int8 directly it widens, multiplies and
// widens again (no x86 before AVX-VNNI-INT8 multiplies signed bytes into
// int32), which measured several times slower (docs/measurements.md).
//
// No overflow: a product is at most 128 · 128 = 2^14 in magnitude, and a sum
// of dim ≤ 4096 of them at most 2^26, far inside int32 (the first sum that
// could overflow needs dim ≥ 131072).
SIGLIPD_CLONES
void siglipd_dot_int8(const int8_t *restrict q, const int8_t *restrict data,
                      int64_t dim, int64_t n, int32_t *restrict out) {
	int16_t wq[SIGLIPD_VEC_MAX_DIM];
	for (int64_t j = 0; j < dim; j++) {
		wq[j] = q[j];
	}
	for (int64_t i = 0; i < n; i++) {
		const int8_t *restrict v = data + i * dim;
		int32_t sum = 0;
		for (int64_t j = 0; j < dim; j++) {
			sum += (int32_t)wq[j] * (int32_t)(int16_t)v[j];
		}
		out[i] = sum;
	}
}
