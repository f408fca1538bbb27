// v4l2query.h: see devices.go.
#ifndef SIGLIPD_V4L2QUERY_H
#define SIGLIPD_V4L2QUERY_H
#include <stdint.h>

#define SIGLIPD_MAX_MODES 256

// One format × size × frame rate a device offers (discrete sizes and
// intervals; a stepwise range is reported by its largest size and the
// fastest rate).
typedef struct {
	uint32_t fourcc;
	uint32_t width, height;
	uint32_t num, den; // frame interval num/den seconds; 0/0 when the device does not say
} siglipd_mode;

typedef struct {
	int err;           // errno of the first call that failed (open, QUERYCAP); 0 when it answered
	int capture;       // 1: a video capture device (not metadata or output)
	char driver[16];
	char card[32];
	char bus_info[32];
	int nmodes;
	siglipd_mode modes[SIGLIPD_MAX_MODES];
} siglipd_device_info;

// siglipd_v4l2_query opens path read-only through libc (so a simulated
// device in tests answers as a real one does) and asks it what it offers.
void siglipd_v4l2_query(const char *path, siglipd_device_info *out);

#endif
