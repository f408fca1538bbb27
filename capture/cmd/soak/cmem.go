package main

/*
#include <malloc.h>

// In use and held by glibc's malloc, over all arenas (mallinfo2, glibc ≥ 2.33).
static size_t siglipd_c_inuse(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }
static size_t siglipd_c_held(void) { struct mallinfo2 m = mallinfo2(); return m.arena + m.hblkhd; }
*/
import "C"

// cInUse is what C code (OpenCV, FFmpeg) has allocated and not freed: if it
// grows, something leaks; if only RSS grows, malloc is keeping freed memory.
func cInUse() int64 { return int64(C.siglipd_c_inuse()) }

// cHeld is what glibc's malloc holds from the system, in use or not.
func cHeld() int64 { return int64(C.siglipd_c_held()) }
