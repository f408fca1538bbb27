package capture

import (
	"context"
	"os"
)

// OpenCV 4.6's FFmpeg backend holds one process-wide mutex for the whole of
// an open (CvCapture_FFMPEG::open takes AutoLock on a static mutex around
// avformat_open_input and avformat_find_stream_info). So while one camera's
// open hangs (a server that accepts the connection and sends nothing), every
// other FFmpeg open in the process waits inside C: in the soak, a looping
// file camera that reopened its file froze behind a stalled RTSP camera's
// open (docs/measurements.md).
//
// openSlot mirrors that lock in Go. A reader takes it before calling into
// OpenCV and gives it back when the open returns (an abandoned reader too,
// whenever OpenCV lets it go). Waiting for the slot happens in Go, so it can
// be cancelled at shutdown and is not mistaken for a stall by the watchdog.
// Cameras that are already streaming never need it: reads take no lock.
var openSlot = make(chan struct{}, 1)

// acquireOpen waits for the slot; false when ctx ended first.
func acquireOpen(ctx context.Context) bool {
	select {
	case openSlot <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func releaseOpen() { <-openSlot }

// ffmpegOptionsVar is how OpenCV 4.6's FFmpeg backend takes FFmpeg options
// (key;value|key;value). gocv v0.31.0 has no open-with-parameters call, so
// the only way to choose RTSP transport and timeouts is this process-wide
// variable, which OpenCV reads (getenv) inside its open.
const ffmpegOptionsVar = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

// ffmpegOptions is the value last set; guarded by openSlot, as is every
// write of the variable, so it never changes while an open may read it.
var ffmpegOptions string

func init() {
	// Define the variable before any camera runs: glibc's setenv only
	// reallocates the environment when it adds a variable, and FFmpeg calls
	// getenv outside opens too (http_proxy when an HLS stream fetches a
	// segment). Replacing a value later is safe for a concurrent getenv.
	ffmpegOptions = "rtsp_transport;tcp" // OpenCV's own default when the variable is unset
	if v, ok := os.LookupEnv(ffmpegOptionsVar); ok {
		ffmpegOptions = v
	} else {
		os.Setenv(ffmpegOptionsVar, ffmpegOptions)
	}
}

// setFFmpegOptions sets the variable for the open about to happen, to
// exactly that open's options ("" for none): another camera's decoder
// options (avdiscard, video_codec) must not carry over into it. The caller
// holds openSlot.
func setFFmpegOptions(v string) {
	if v != ffmpegOptions {
		os.Setenv(ffmpegOptionsVar, v)
		ffmpegOptions = v
	}
}
