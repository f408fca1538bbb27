package daemon

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include "opencv_log.h"
*/
import "C"

import "os"

// quietOpenCV keeps OpenCV's (and its FFmpeg backend's) warnings off stderr:
// they bypass our structured logs, and every failure they describe also
// reaches us as an error that we log with the camera or file it concerns.
// OPENCV_LOG_LEVEL, when set, wins. (The variable alone is not enough from
// Go: OpenCV reads it during static initialization, before main runs.)
func quietOpenCV() {
	if _, set := os.LookupEnv("OPENCV_LOG_LEVEL"); !set {
		C.siglipd_opencv_log_errors_only()
	}
}
