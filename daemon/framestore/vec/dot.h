#include <stdint.h>

// SIGLIPD_VEC_MAX_DIM bounds dim: the query is widened into a stack buffer
// of this many int16. It must equal MaxDim in vec.go.
#define SIGLIPD_VEC_MAX_DIM 4096

void siglipd_dot_int8(const int8_t *q, const int8_t *data, int64_t dim, int64_t n, int32_t *out);
