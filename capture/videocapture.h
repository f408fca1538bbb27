// videocapture.h: the few cv::VideoCapture calls capture needs that gocv
// v0.31.0 does not offer (see videocapture.go).
#ifndef SIGLIPD_VIDEOCAPTURE_H
#define SIGLIPD_VIDEOCAPTURE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void* SiglipdCapture; // a cv::VideoCapture*

// Both return NULL when the capture cannot be opened. hw_acceleration is a
// cv::VideoAccelerationType; VIDEO_ACCELERATION_NONE (0) asks for none.
SiglipdCapture siglipd_open_ffmpeg(const char* uri, int open_timeout_ms, int read_timeout_ms, int hw_acceleration);
SiglipdCapture siglipd_open_v4l2(int index);
int siglipd_grab(SiglipdCapture c);
int siglipd_retrieve(SiglipdCapture c, void* mat); // mat: a cv::Mat*, as gocv's Mat.Ptr()
double siglipd_get(SiglipdCapture c, int prop);
int siglipd_set(SiglipdCapture c, int prop, double value);
void siglipd_close(SiglipdCapture c);

#ifdef __cplusplus
}
#endif

#endif
