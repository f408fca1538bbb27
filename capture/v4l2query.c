// v4l2query.c: see devices.go. Plain V4L2 ioctls, as v4l2-ctl
// --list-formats-ext asks them, through libc's open and ioctl.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/videodev2.h>

#include "v4l2query.h"

static int xioctl(int fd, unsigned long req, void *arg) {
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r == -1 && errno == EINTR);
	return r;
}

static void add(siglipd_device_info *out, uint32_t fourcc, uint32_t w, uint32_t h, uint32_t num, uint32_t den) {
	if (out->nmodes >= SIGLIPD_MAX_MODES) return;
	siglipd_mode *m = &out->modes[out->nmodes++];
	m->fourcc = fourcc, m->width = w, m->height = h, m->num = num, m->den = den;
}

// intervals adds the frame rates of one format and size.
static void intervals(int fd, siglipd_device_info *out, uint32_t fourcc, uint32_t w, uint32_t h) {
	struct v4l2_frmivalenum iv;
	int n = 0;
	for (uint32_t i = 0;; i++) {
		memset(&iv, 0, sizeof iv);
		iv.index = i, iv.pixel_format = fourcc, iv.width = w, iv.height = h;
		if (xioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iv) != 0) break;
		if (iv.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
			add(out, fourcc, w, h, iv.discrete.numerator, iv.discrete.denominator);
		} else { // continuous or stepwise: its fastest rate
			add(out, fourcc, w, h, iv.stepwise.min.numerator, iv.stepwise.min.denominator);
			n++;
			break;
		}
		n++;
	}
	if (n == 0) add(out, fourcc, w, h, 0, 0);
}

void siglipd_v4l2_query(const char *path, siglipd_device_info *out) {
	memset(out, 0, sizeof *out);
	int fd = open(path, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		out->err = errno;
		return;
	}
	struct v4l2_capability cap;
	memset(&cap, 0, sizeof cap);
	if (xioctl(fd, VIDIOC_QUERYCAP, &cap) != 0) {
		out->err = errno;
		close(fd);
		return;
	}
	uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
	out->capture = (caps & V4L2_CAP_VIDEO_CAPTURE) != 0;
	memcpy(out->driver, cap.driver, sizeof out->driver - 1);
	memcpy(out->card, cap.card, sizeof out->card - 1);
	memcpy(out->bus_info, cap.bus_info, sizeof out->bus_info - 1);
	if (!out->capture) {
		close(fd);
		return;
	}
	struct v4l2_fmtdesc fd_;
	for (uint32_t i = 0;; i++) {
		memset(&fd_, 0, sizeof fd_);
		fd_.index = i, fd_.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		if (xioctl(fd, VIDIOC_ENUM_FMT, &fd_) != 0) break;
		struct v4l2_frmsizeenum fs;
		int sizes = 0;
		for (uint32_t j = 0;; j++) {
			memset(&fs, 0, sizeof fs);
			fs.index = j, fs.pixel_format = fd_.pixelformat;
			if (xioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) != 0) break;
			sizes++;
			if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
				intervals(fd, out, fd_.pixelformat, fs.discrete.width, fs.discrete.height);
			} else { // a range: its largest size
				intervals(fd, out, fd_.pixelformat, fs.stepwise.max_width, fs.stepwise.max_height);
				break;
			}
		}
		if (sizes == 0) add(out, fd_.pixelformat, 0, 0, 0, 0);
	}
	close(fd);
}
