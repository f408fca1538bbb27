package capture

/*
#include <malloc.h>

// siglipd_tune_malloc limits glibc's malloc arenas and fixes its mmap
// threshold; it returns 1 when both took effect, 0 when this C library has
// no such settings (musl).
static int siglipd_tune_malloc(int arenas, int mmap_threshold) {
#if defined(M_ARENA_MAX) && defined(M_MMAP_THRESHOLD)
	return mallopt(M_ARENA_MAX, arenas) == 1 && mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1;
#else
	return 0;
#endif
}
*/
import "C"

import (
	"os"
	"sync/atomic"
)

// What TuneMalloc sets: the settings that kept RSS flattest in the soak
// (scripts/soak-capture.sh); the figures of each setting tried are in
// docs/measurements.md.
const (
	mallocArenas        = 2
	mallocMmapThreshold = 256 << 10 // below a 640×360 BGR frame (675 KiB)
)

// TuneMalloc sets glibc's malloc up for video, for the whole process: at
// most 2 arenas, and blocks of 256 KiB or more (frames) always mapped
// separately, so they go back to the system when freed. Call it first thing
// in main, before cameras start. It does nothing when MALLOC_ARENA_MAX,
// MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES is set (the operator chose), and
// reports whether it changed anything.
//
// Why: capture calls into OpenCV and FFmpeg from many OS threads (Go moves
// goroutines between threads, every call stuck in OpenCV holds one, FFmpeg
// starts decoder threads per connection). glibc gives threads their own
// arenas and keeps freed frame buffers in each, so every reconnect or stall
// left RSS a few MiB higher (docs/measurements.md).
// Go's own heap is not affected.
func TuneMalloc() bool {
	for _, v := range []string{"MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"} {
		if os.Getenv(v) != "" {
			return false
		}
	}
	tuned := C.siglipd_tune_malloc(mallocArenas, mallocMmapThreshold) == 1
	mallocTuned.Store(tuned)
	return tuned
}

var mallocTuned atomic.Bool

// MallocTuned reports whether TuneMalloc changed malloc (for the start-up log).
func MallocTuned() bool { return mallocTuned.Load() }
