package capture

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include "opencv_log.h"
*/
import "C"

import "os"

// QuietOpenCV keeps OpenCV's (and its FFmpeg backend's) warnings off stderr,
// for the whole process: they bypass the structured logs, and every failure
// they describe also reaches us as an error, logged with the camera or file
// it concerns. OPENCV_LOG_LEVEL, when set, wins. Call it first thing in main.
// (The variable alone is not enough from Go: OpenCV reads it during static
// initialization, before main runs.)
func QuietOpenCV() {
	if _, set := os.LookupEnv("OPENCV_LOG_LEVEL"); !set {
		C.siglipd_opencv_log_errors_only()
	}
}
