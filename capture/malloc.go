package capture

/*
#include <malloc.h>

// siglipd_arena_max limits glibc's malloc arenas; 0 when this C library
// has no such setting (musl).
static int siglipd_arena_max(int n) {
#ifdef M_ARENA_MAX
	return mallopt(M_ARENA_MAX, n);
#else
	return 0;
#endif
}
*/
import "C"

import "os"

// mallocArenas is what TuneMalloc sets. Measured with capture/cmd/soak (4
// cameras, a stall and a server restart every 30 s, 5 minutes): RSS grew
// 11.5% after the first minute with glibc's default (up to 8 arenas per
// core) and changed by -1.0% with 2.
const mallocArenas = 2

// TuneMalloc limits glibc's malloc to a few arenas, for the whole process.
// Call it first thing in main, before cameras start; it does nothing when
// MALLOC_ARENA_MAX or GLIBC_TUNABLES is set (the operator chose) and reports
// whether it changed anything.
//
// Why: capture calls into OpenCV and FFmpeg from many OS threads (Go moves
// goroutines between threads, every call stuck in OpenCV holds one, FFmpeg
// starts decoder threads per connection). glibc gives threads their own
// arenas and keeps freed frame buffers in each, so every reconnect or stall
// leaves RSS a few MiB higher until all arenas are full: +18% over a
// 10-minute soak. It is memory kept, not leaked, but it reads as a leak and
// it costs RAM on small boxes. Go's own heap is not affected.
func TuneMalloc() bool {
	if os.Getenv("MALLOC_ARENA_MAX") != "" || os.Getenv("GLIBC_TUNABLES") != "" {
		return false
	}
	return C.siglipd_arena_max(mallocArenas) == 1
}
