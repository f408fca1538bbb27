package capture

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "videocapture.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// videoCapture is a cv::VideoCapture opened through a small C++ shim
// (videocapture.cpp) instead of gocv.VideoCapture, for three things gocv
// v0.31.0 cannot do:
//
//   - open with parameters: CAP_PROP_OPEN_TIMEOUT_MSEC and
//     CAP_PROP_READ_TIMEOUT_MSEC set OpenCV's interrupt timeouts (30 s by
//     default). OpenCV holds a process-wide lock for a whole FFmpeg open
//     (see openlock.go), so a bounded open bounds how long one camera can
//     hold up the others' reconnects. FFmpeg's own socket timeout did not
//     bound an open whose PLAY went unanswered (docs/measurements.md).
//   - grab without retrieve: every frame must be decoded, but only the
//     sampled ones need converting to BGR (2 of 25 at fps 2).
//   - fail without an error quoting the URL (gocv's quotes it, password
//     and all).
//
// Frames still land in gocv Mats.
type videoCapture struct {
	p C.SiglipdCapture
}

// openFFmpeg opens a stream or file with OpenCV's FFmpeg backend; nil when
// it cannot. The timeouts are OpenCV's interrupt timeouts for the open and
// for each grab.
func openFFmpeg(uri string, openTimeout, readTimeout time.Duration) *videoCapture {
	curi := C.CString(uri)
	defer C.free(unsafe.Pointer(curi))
	p := C.siglipd_open_ffmpeg(curi, C.int(openTimeout.Milliseconds()), C.int(readTimeout.Milliseconds()))
	if p == nil {
		return nil
	}
	return &videoCapture{p: p}
}

// openV4L2 opens a video device by index; nil when it cannot.
func openV4L2(index int) *videoCapture {
	p := C.siglipd_open_v4l2(C.int(index))
	if p == nil {
		return nil
	}
	return &videoCapture{p: p}
}

// grab decodes the next frame without converting it; false at the end of
// the stream or on error.
func (v *videoCapture) grab() bool { return C.siglipd_grab(v.p) != 0 }

// retrieve converts the frame grab decoded into m (BGR).
func (v *videoCapture) retrieve(m *gocv.Mat) bool {
	return C.siglipd_retrieve(v.p, unsafe.Pointer(m.Ptr())) != 0
}

func (v *videoCapture) get(prop gocv.VideoCaptureProperties) float64 {
	return float64(C.siglipd_get(v.p, C.int(prop)))
}

func (v *videoCapture) set(prop gocv.VideoCaptureProperties, value float64) bool {
	return C.siglipd_set(v.p, C.int(prop), C.double(value)) != 0
}

// close releases the capture (and its connection).
func (v *videoCapture) close() {
	if v != nil && v.p != nil {
		C.siglipd_close(v.p)
		v.p = nil
	}
}
