package capture

import (
	"fmt"
	"strings"
	"time"
)

// Decode says which of a stream's frames are decoded.
//
// A decoder can start afresh at every key frame, which needs no other
// frame, so a reader may leave every other frame undecoded and still give
// whole pictures: one per key frame. With OpenCV 4.6's FFmpeg backend that
// is the capture option avdiscard=nonkey, which sets the decoder's
// skip_frame to AVDISCARD_NONKEY: packets are still read and parsed, but
// only key frames are decoded, and a grab returns at the next key frame.
// Everything else (open and read timeouts, the open lock, RTSP options,
// files looping by seeking) stays as it is. docs/02-cameras.md ("Decoding
// key frames only") says when to choose which; docs/measurements.md has
// what it saves.
type Decode string

// The decode modes. The zero value is DecodeAll.
const (
	// DecodeAll decodes every frame (the stream's full rate is there to
	// sample from).
	DecodeAll Decode = "all"
	// DecodeKeyframes decodes key frames only: sampling is capped at the
	// stream's keyframe rate.
	DecodeKeyframes Decode = "keyframes"
	// DecodeAuto decodes key frames only while they come at least as often
	// as FPS asks, and every frame otherwise. It starts with key frames
	// (cheap, and it measures their rate directly), and reopens the stream
	// in the other mode when a connection's measured keyframe rate says so
	// (autoWants), with one log line each time.
	DecodeAuto Decode = "auto"
)

// HWAccel names a hardware decoder to try before software. None of these
// paths has run on real hardware here: what is tested is that asking for
// one on a machine without it still streams, in software, with one log
// line (TestHWAccelFallback).
type HWAccel string

// The hardware decoders. The zero value is HWAccelNone.
const (
	HWAccelNone HWAccel = "none"
	// HWAccelVAAPI is VA-API (Intel, AMD: /dev/dri/renderD128), through
	// OpenCV's CAP_PROP_HW_ACCELERATION: FFmpeg's own decoder with VA-API
	// doing the work, so key-frame skipping still applies.
	HWAccelVAAPI HWAccel = "vaapi"
	// HWAccelNVDEC is NVIDIA's decoder, FFmpeg's h264_cuvid picked by name
	// (OpenCV 4.6 cannot ask for CUDA): H.264 only, and needs the driver's
	// libnvcuvid.
	HWAccelNVDEC HWAccel = "nvdec"
	// HWAccelV4L2M2M is a V4L2 memory-to-memory decoder (the Raspberry Pi 4's),
	// FFmpeg's h264_v4l2m2m picked by name: H.264 only.
	HWAccelV4L2M2M HWAccel = "v4l2m2m"
)

// openParams is what an open asks OpenCV for: the cv::VideoAccelerationType
// and the FFmpeg decoder to use ("" for FFmpeg's choice).
func (h HWAccel) openParams() (accel int, decoder string) {
	switch h {
	case HWAccelVAAPI:
		return videoAccelerationVAAPI, ""
	case HWAccelNVDEC:
		return videoAccelerationNone, "h264_cuvid"
	case HWAccelV4L2M2M:
		return videoAccelerationNone, "h264_v4l2m2m"
	}
	return videoAccelerationNone, ""
}

// tried says, for the fallback's log line, what was asked of OpenCV.
func (h HWAccel) tried() string {
	accel, decoder := h.openParams()
	if decoder != "" {
		return "FFmpeg decoder " + decoder
	}
	if accel == videoAccelerationVAAPI {
		return "VA-API through OpenCV (CAP_PROP_HW_ACCELERATION)"
	}
	return string(h)
}

// decoderOptions are the OPENCV_FFMPEG_CAPTURE_OPTIONS entries that choose
// how an open decodes. OpenCV 4.6 reads both from the options it passed to
// the demuxer (which leaves them unused): avdiscard sets the decoder's
// skip_frame, video_codec picks a decoder by name.
func decoderOptions(keyframes bool, decoder string) []string {
	var opts []string
	if keyframes {
		opts = append(opts, "avdiscard;nonkey")
	}
	if decoder != "" {
		opts = append(opts, "video_codec;"+decoder)
	}
	return opts
}

// openOptions is OPENCV_FFMPEG_CAPTURE_OPTIONS for one open: the source's
// own (key;value|key;value, or "") and the decoder's.
func openOptions(source string, decoder []string) string {
	if source != "" {
		decoder = append([]string{source}, decoder...)
	}
	return strings.Join(decoder, "|")
}

// parseDecode and parseHWAccel check the options' values; "" is the default.
func parseDecode(d Decode) (Decode, error) {
	switch d {
	case "":
		return DecodeAll, nil
	case DecodeAll, DecodeKeyframes, DecodeAuto:
		return d, nil
	}
	return d, fmt.Errorf("decode must be all, keyframes or auto, got %q", string(d))
}

func parseHWAccel(h HWAccel) (HWAccel, error) {
	switch h {
	case "":
		return HWAccelNone, nil
	case HWAccelNone, HWAccelVAAPI, HWAccelNVDEC, HWAccelV4L2M2M:
		return h, nil
	}
	return h, fmt.Errorf("hwaccel must be none, vaapi, nvdec or v4l2m2m, got %q", string(h))
}

// keyframeWindow is how many key frames the keyframe rate is measured over:
// the last eight seconds of a typical camera, long enough to even out
// network jitter, short enough to follow a camera whose settings change.
const keyframeWindow = 9

// keyframeJudgeAfter is how many keyframe intervals a connection measures
// before its rate is acted on (the warning, auto's choice): one interval
// can be cut short by a key frame the open read ahead.
const keyframeJudgeAfter = 3

// keyframeShortfall: with key frames only, a camera is warned about (and
// auto decodes everything) when key frames come at less than this share of
// fps. Sampling takes a key frame up to half a period early (sampler.early),
// so a rate just under fps is sampled at that rate, a few percent short, not
// worth a reopen.
const keyframeShortfall = 0.9

// keyframeClock measures a stream's keyframe rate from when its key frames
// are read. The first key frame of a connection is left out: it was read
// ahead inside the open, so its interval to the next is short. It is the
// reader's; it is not safe for concurrent use.
type keyframeClock struct {
	seen    int                       // key frames seen on this connection, the left-out first included
	times   [keyframeWindow]time.Time // ring of the last read times
	n       int                       // times recorded
	longest time.Duration             // the longest interval seen on this connection
}

// add records a key frame read at t.
func (k *keyframeClock) add(t time.Time) {
	k.seen++
	if k.seen == 1 {
		return
	}
	if k.n > 0 {
		k.longest = max(k.longest, t.Sub(k.times[(k.n-1)%len(k.times)]))
	}
	k.times[k.n%len(k.times)] = t
	k.n++
}

// rate is key frames per second over the window, and how many intervals it
// spans; 0, 0 before two key frames were recorded.
func (k *keyframeClock) rate() (float64, int) {
	if k.n < 2 {
		return 0, 0
	}
	count := min(k.n, len(k.times))
	first := k.times[(k.n-count)%len(k.times)]
	last := k.times[(k.n-1)%len(k.times)]
	span := last.Sub(first).Seconds()
	if span <= 0 {
		return 0, 0
	}
	return float64(count-1) / span, count - 1
}

// autoWants is auto's choice for a stream whose key frames come at rate
// (measured over enough intervals) when fps is asked for: key frames only
// when they come at least as often as fps, every frame when they come
// clearly less often (keyframeShortfall), and otherwise what it decodes now
// (keyframes), so that a rate near fps does not flip the mode at every
// connection.
func autoWants(rate, fps float64, keyframes bool) bool {
	switch {
	case rate >= fps:
		return true
	case rate < fps*keyframeShortfall:
		return false
	}
	return keyframes
}
