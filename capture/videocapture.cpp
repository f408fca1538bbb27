// videocapture.cpp: see videocapture.go. Every call catches C++ exceptions:
// one escaping into Go through cgo would abort the whole daemon.
#include <opencv2/videoio.hpp>
#include <vector>

#include "videocapture.h"

SiglipdCapture siglipd_open_ffmpeg(const char* uri, int open_timeout_ms, int read_timeout_ms, int hw_acceleration) {
    cv::VideoCapture* vc = NULL;
    try {
        vc = new cv::VideoCapture();
        std::vector<int> params = {
            cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_ms,
            cv::CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms,
        };
        if (hw_acceleration != cv::VIDEO_ACCELERATION_NONE) {
            params.push_back(cv::CAP_PROP_HW_ACCELERATION);
            params.push_back(hw_acceleration);
        }
        if (vc->open(uri, cv::CAP_FFMPEG, params)) return vc;
    } catch (...) {
    }
    delete vc;
    return NULL;
}

SiglipdCapture siglipd_open_v4l2(int index) {
    cv::VideoCapture* vc = NULL;
    try {
        vc = new cv::VideoCapture();
        if (vc->open(index, cv::CAP_V4L2)) return vc;
    } catch (...) {
    }
    delete vc;
    return NULL;
}

int siglipd_grab(SiglipdCapture c) {
    try {
        return static_cast<cv::VideoCapture*>(c)->grab() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int siglipd_retrieve(SiglipdCapture c, void* mat) {
    try {
        return static_cast<cv::VideoCapture*>(c)->retrieve(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

double siglipd_get(SiglipdCapture c, int prop) {
    try {
        return static_cast<cv::VideoCapture*>(c)->get(prop);
    } catch (...) {
        return 0;
    }
}

int siglipd_set(SiglipdCapture c, int prop, double value) {
    try {
        return static_cast<cv::VideoCapture*>(c)->set(prop, value) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

void siglipd_close(SiglipdCapture c) {
    try {
        delete static_cast<cv::VideoCapture*>(c);
    } catch (...) {
    }
}
