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
//   - grab without retrieve: every frame grabbed is decoded, but only the
//     sampled ones need converting to BGR (2 of 25 at fps 2).
//   - ask for hardware decoding (CAP_PROP_HW_ACCELERATION, open-only) and
//     read back what OpenCV used.
//   - fail without an error quoting the URL (gocv's quotes it, password
//     and all).
//
// Frames still land in gocv Mats.
type videoCapture struct {
	p C.SiglipdCapture
}

// OpenCV property and value numbers gocv v0.31.0 has no names for
// (opencv2/videoio.hpp, 4.6).
const (
	// capPropHWAcceleration is CAP_PROP_HW_ACCELERATION: asked for at open,
	// and read back, the acceleration the decoder uses.
	capPropHWAcceleration gocv.VideoCaptureProperties = 50
	// capPropKeyPacket is CAP_PROP_LRF_HAS_KEY_FRAME: whether the last
	// packet the FFmpeg backend read was flagged a key frame by the demuxer
	// (its parser, for RTSP: IDR or recovery point in H.264, IRAP in H.265:
	// what the decoder keeps under avdiscard nonkey). Documented for raw
	// mode, it reads the packet in every mode. With frame threads that
	// packet is a frame or two past the one just decoded, which shifts key
	// frames but not the intervals between them.
	capPropKeyPacket gocv.VideoCaptureProperties = 67

	videoAccelerationNone  = 0 // cv::VIDEO_ACCELERATION_NONE
	videoAccelerationVAAPI = 3 // cv::VIDEO_ACCELERATION_VAAPI
)

// openFFmpeg opens a stream or file with OpenCV's FFmpeg backend; nil when
// it cannot. The timeouts are OpenCV's interrupt timeouts for the open and
// for each grab. hwAccel is a cv::VideoAccelerationType
// (videoAccelerationNone for software).
func openFFmpeg(uri string, openTimeout, readTimeout time.Duration, hwAccel int) *videoCapture {
	curi := C.CString(uri)
	defer C.free(unsafe.Pointer(curi))
	p := C.siglipd_open_ffmpeg(curi, C.int(openTimeout.Milliseconds()), C.int(readTimeout.Milliseconds()), C.int(hwAccel))
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
