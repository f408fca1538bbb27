/*
 * v4l2sim.c plays the kernel's part for simulated USB cameras. Loaded with
 * LD_PRELOAD, it answers open, close, ioctl, mmap, select, poll and read for
 * the device nodes described in the shared state file named by
 * $V4L2SIM_STATE (and fopen of their sysfs uevent), and hands every other
 * call to libc (dlsym RTLD_NEXT).
 * What it models and what it does not is written in ../v4l2sim.go, which
 * also holds the controller that writes the state file.
 *
 * Each open of a simulated node returns a real descriptor, opened O_PATH on
 * the node itself: the number is unique, /proc/PID/fd names the node (so a
 * "who holds /dev/video7?" search finds it), fstat sees the node, and close
 * works whether or not it comes through here. Buffers live in a memfd, so
 * that mmap on the device descriptor maps that memfd and munmap needs no
 * help.
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE /* its inline open() would clash with ours */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/version.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* The shared state. Every field is a 32-bit word, so that v4l2sim.go
 * addresses it by index: keep the two in step (magic, version and
 * device_size catch a mismatch). The controller writes the configuration
 * and the switches; this library writes owner, owner_pid, streaming, the
 * current format and the counters. */
#define SIM_MAGIC 0x6d697332u
#define SIM_VERSION 1
#define SIM_DEVICES 16
#define SIM_FORMATS 4
#define SIM_SIZES 8
#define SIM_RATES 4

struct sim_format {
	uint32_t fourcc, nsizes;
	uint32_t width[SIM_SIZES], height[SIM_SIZES];
	uint32_t nrates[SIM_SIZES], fps[SIM_SIZES][SIM_RATES];
};

struct sim_device {
	uint32_t used;      /* slot configured; the controller sets it last */
	uint32_t number;    /* N of /dev/videoN */
	uint32_t present;   /* 0 while unplugged */
	uint32_t gen;       /* bumped at each unplug: older descriptors get ENODEV */
	uint32_t stalled, busy, denied;
	uint32_t rgb;       /* the scene: one colour, 0xRRGGBB */
	uint32_t owner;     /* open id holding the buffers, 0 for none: one streamer per device */
	uint32_t owner_pid; /* its process, 0 while it is being claimed */
	uint32_t streaming; /* open id streaming, 0 for none */
	uint32_t cur_format, cur_size, cur_rate; /* the device's format, shared by every open */
	uint32_t brightness;
	uint32_t opens, formats_set, frames, streamons; /* counters for tests */
	char card[32];
	uint32_t nformats;
	struct sim_format format[SIM_FORMATS];
};

struct sim_state {
	uint32_t magic, version, device_size, next_id;
	struct sim_device device[SIM_DEVICES];
};

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_ACQ_REL)
#define CAS(x, old, new) __sync_bool_compare_and_swap(&(x), (old), (new))

/* One open descriptor of a simulated device (this process only). */
#define MAX_FD 4096
#define MAX_BUFS 32
struct simfd {
	int dev;
	uint32_t gen, id;
	int nonblock;
	/* Buffers, sized at REQBUFS from the format then: nbufs of them, stride
	 * bytes apart in memfd, which mem maps for writing frames. */
	uint32_t nbufs, fourcc, width, height, sizeimage, stride;
	int memfd;
	uint8_t *mem;
	uint32_t bytesused[MAX_BUFS], filled[MAX_BUFS]; /* filled: rgb+1 a YUYV buffer holds */
	uint32_t queue[MAX_BUFS], qhead, qlen;           /* queued buffers, in order */
	int streaming;
	int64_t t0, interval; /* ns: STREAMON time, frame interval */
	uint64_t next;        /* frames before this one were handed out or dropped */
	uint8_t *jpeg;        /* the encoded scene, for MJPEG, and the colour it shows */
	size_t jpeglen;
	uint32_t jpegrgb;
};

static struct sim_state *st;
static struct simfd *fds[MAX_FD];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static ssize_t (*real_read)(int, void *, size_t);
static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);
static int debug; /* $V4L2SIM_DEBUG: log each request and wait to stderr */

static void init(void)
{
	real_openat = dlsym(RTLD_NEXT, "openat");
	real_close = dlsym(RTLD_NEXT, "close");
	real_ioctl = dlsym(RTLD_NEXT, "ioctl");
	real_mmap = dlsym(RTLD_NEXT, "mmap");
	real_select = dlsym(RTLD_NEXT, "select");
	real_poll = dlsym(RTLD_NEXT, "poll");
	real_read = dlsym(RTLD_NEXT, "read");
	real_fopen = dlsym(RTLD_NEXT, "fopen");
	real_fopen64 = dlsym(RTLD_NEXT, "fopen64");
	debug = getenv("V4L2SIM_DEBUG") != NULL;
}

/* map_state maps $V4L2SIM_STATE, once it exists. Called with mu held. */
static void map_state(void)
{
	const char *path = getenv("V4L2SIM_STATE");
	if (st || !path || !*path)
		return;
	int fd = real_openat(AT_FDCWD, path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	struct sim_state *s = real_mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	real_close(fd);
	if (s == MAP_FAILED)
		return;
	if (s->magic != SIM_MAGIC || s->version != SIM_VERSION || s->device_size != sizeof(struct sim_device)) {
		fprintf(stderr, "v4l2sim: %s was written for another version of this library\n", path);
		munmap(s, sizeof *s);
		return;
	}
	st = s;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int is_sim(int fd) { return fd >= 0 && fd < MAX_FD && __atomic_load_n(&fds[fd], __ATOMIC_ACQUIRE); }

static struct sim_device *dev_of(struct simfd *f) { return &st->device[f->dev]; }

/* gone: the device was unplugged (or removed) since f was opened. */
static int gone(struct simfd *f)
{
	struct sim_device *d = dev_of(f);
	return !LOAD(d->used) || !LOAD(d->present) || LOAD(d->gen) != f->gen;
}

/* ---- Opening ---- */

static int sim_open(int dirfd, const char *path, int flags, mode_t mode)
{
	char resolved[PATH_MAX], extra;
	unsigned n;
	pthread_once(&once, init);
	/* A by-id or by-path link resolves to the node, as the kernel follows it. */
	if (!path || strncmp(path, "/dev/", 5) != 0 || !realpath(path, resolved) ||
	    sscanf(resolved, "/dev/video%u%c", &n, &extra) != 1)
		return real_openat(dirfd, path, flags, mode);
	pthread_mutex_lock(&mu);
	map_state();
	int d = -1;
	for (int i = 0; st && i < SIM_DEVICES; i++)
		if (LOAD(st->device[i].used) && LOAD(st->device[i].present) && LOAD(st->device[i].number) == n)
			d = i;
	if (d < 0) {
		/* Not simulated (or unplugged): the kernel answers, e.g. ENXIO for a node without a driver. */
		pthread_mutex_unlock(&mu);
		return real_openat(dirfd, path, flags, mode);
	}
	struct sim_device *dv = &st->device[d];
	int err = LOAD(dv->denied) ? EACCES : LOAD(dv->busy) ? EBUSY : 0;
	int fd = -1;
	if (!err) {
		fd = real_openat(AT_FDCWD, resolved, O_PATH | (flags & O_CLOEXEC));
		if (fd < 0)
			err = errno;
		else if (fd >= MAX_FD) {
			real_close(fd);
			err = EMFILE;
		}
	}
	struct simfd *f = err ? NULL : calloc(1, sizeof *f);
	if (!err && !f) {
		real_close(fd);
		err = ENOMEM;
	}
	if (!err) {
		f->dev = d;
		f->gen = LOAD(dv->gen);
		f->id = ADD(st->next_id, 1);
		f->nonblock = (flags & O_NONBLOCK) != 0;
		f->memfd = -1;
		__atomic_store_n(&fds[fd], f, __ATOMIC_RELEASE);
		ADD(dv->opens, 1);
	}
	pthread_mutex_unlock(&mu);
	if (err) {
		errno = err;
		return -1;
	}
	return fd;
}

/* mode is only there when the flags say so; reading it otherwise is undefined. */
#define MODE_ARG(flags)                                                 \
	mode_t mode = 0;                                                \
	if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) { \
		va_list ap;                                             \
		va_start(ap, flags);                                    \
		mode = va_arg(ap, mode_t);                              \
		va_end(ap);                                             \
	}

int open(const char *path, int flags, ...) { MODE_ARG(flags) return sim_open(AT_FDCWD, path, flags, mode); }
int open64(const char *path, int flags, ...) { MODE_ARG(flags) return sim_open(AT_FDCWD, path, flags, mode); }
int openat(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags) return sim_open(dirfd, path, flags, mode); }
int openat64(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags) return sim_open(dirfd, path, flags, mode); }
/* The _FORTIFY_SOURCE entry points (v4l2-ctl calls __open_2). */
int __open_2(const char *path, int flags) { return sim_open(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return sim_open(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return sim_open(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return sim_open(dirfd, path, flags, 0); }

/* v4l-utils tell a video node from others by its sysfs entry,
 * /sys/dev/char/81:N/uevent with DEVNAME=videoN, which no driver made here;
 * libstdc++'s ifstream opens it with fopen64, and gets a copy in a memfd. */
static FILE *sim_fopen(const char *path, const char *mode, FILE *(**real)(const char *, const char *))
{
	unsigned major, minor;
	char extra;
	int found = 0;
	pthread_once(&once, init);
	if (path && sscanf(path, "/sys/dev/char/%u:%u/uevent%c", &major, &minor, &extra) == 2 && major == 81) {
		pthread_mutex_lock(&mu);
		map_state();
		for (int i = 0; st && i < SIM_DEVICES; i++)
			found |= LOAD(st->device[i].used) && LOAD(st->device[i].present) && LOAD(st->device[i].number) == minor;
		pthread_mutex_unlock(&mu);
	}
	if (!found)
		return (*real)(path, mode);
	int fd = memfd_create("uevent", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	dprintf(fd, "MAJOR=81\nMINOR=%u\nDEVNAME=video%u\n", minor, minor);
	lseek(fd, 0, SEEK_SET);
	return fdopen(fd, "r");
}

FILE *fopen(const char *path, const char *mode) { return sim_fopen(path, mode, &real_fopen); }
FILE *fopen64(const char *path, const char *mode) { return sim_fopen(path, mode, &real_fopen64); }

/* ---- Buffers ---- */

static void stream_off(struct simfd *f)
{
	if (f->streaming)
		CAS(dev_of(f)->streaming, f->id, 0);
	f->streaming = 0;
	f->qlen = 0; /* STREAMOFF hands every buffer back to the application */
}

/* held_elsewhere: another open holds the device's buffers. One in a
 * process that died without closing it holds nothing: the kernel would
 * have closed it. */
static int held_elsewhere(struct simfd *f)
{
	struct sim_device *d = dev_of(f);
	uint32_t owner = LOAD(d->owner), pid = LOAD(d->owner_pid);
	if (!owner || owner == f->id)
		return 0;
	int saved = errno;
	if (pid && kill(pid, 0) < 0 && errno == ESRCH) {
		CAS(d->streaming, owner, 0);
		CAS(d->owner, owner, 0);
		errno = saved;
		return 0;
	}
	errno = saved;
	return 1;
}

static void release_buffers(struct simfd *f)
{
	stream_off(f);
	if (f->mem)
		munmap(f->mem, (size_t)f->nbufs * f->stride);
	if (f->memfd >= 0)
		real_close(f->memfd);
	f->mem = NULL;
	f->memfd = -1;
	f->nbufs = 0;
	if (LOAD(dev_of(f)->owner) == f->id) {
		STORE(dev_of(f)->owner_pid, 0);
		CAS(dev_of(f)->owner, f->id, 0);
	}
}

int close(int fd)
{
	pthread_once(&once, init);
	if (is_sim(fd)) {
		pthread_mutex_lock(&mu);
		struct simfd *f = fds[fd];
		__atomic_store_n(&fds[fd], NULL, __ATOMIC_RELEASE);
		if (f) {
			release_buffers(f);
			free(f->jpeg);
			free(f);
		}
		pthread_mutex_unlock(&mu);
	}
	return real_close(fd);
}

/* ---- Frames ---- */

static uint8_t clamp8(double v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5); }

/* yuyv_fill paints a frame of one colour in packed 4:2:2, BT.601 limited
 * range: what OpenCV's COLOR_YUV2BGR_YUYV expects. */
static void yuyv_fill(uint8_t *p, uint32_t w, uint32_t h, uint32_t rgb)
{
	double r = rgb >> 16 & 255, g = rgb >> 8 & 255, b = rgb & 255;
	uint8_t y = clamp8(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
	uint8_t u = clamp8(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255);
	uint8_t v = clamp8(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255);
	uint8_t px[4] = {y, u, y, v};
	for (size_t i = 0; i < (size_t)w * h / 2; i++)
		memcpy(p + 4 * i, px, 4);
}

struct bits {
	uint8_t *p;
	uint32_t acc, n;
};

static void put_bits(struct bits *b, uint32_t v, int len)
{
	while (len-- > 0) {
		b->acc = b->acc << 1 | (v >> len & 1);
		if (++b->n == 8) {
			*b->p++ = b->acc;
			if (b->acc == 0xFF)
				*b->p++ = 0; /* byte stuffing */
			b->acc = b->n = 0;
		}
	}
}

/* The frame counter lives in a COM segment right after SOI: bytes
 * JPEG_COUNTER..+10 of every frame, ten decimal digits. */
#define JPEG_COUNTER 20

/* jpeg_encode writes a baseline JPEG of one colour: 4:4:4, every
 * quantiser 1, and Huffman tables holding only the codes a flat picture
 * needs (DC categories as 4-bit codes, AC end-of-block as "0"). Every 8x8
 * block is its DC coefficient and an end-of-block, so after the first
 * block the data is all zero bits. It returns the length; out must hold
 * 300 + 2 * (8x8 blocks) bytes. */
static size_t jpeg_encode(uint8_t *out, uint32_t w, uint32_t h, uint32_t rgb)
{
	double r = rgb >> 16 & 255, g = rgb >> 8 & 255, b = rgb & 255;
	double ycc[3] = {0.299 * r + 0.587 * g + 0.114 * b, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
			 128 + 0.5 * r - 0.418688 * g - 0.081312 * b};
	static const uint8_t head[] = {
		0xFF, 0xD8,                                             /* SOI */
		0xFF, 0xFE, 0, 26, 'v', '4', 'l', '2', 's', 'i', 'm', ' ', /* COM: the frame counter */
		'f', 'r', 'a', 'm', 'e', ' ', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
		0xFF, 0xDB, 0, 67, 0, /* DQT 0, followed by 64 ones */
	};
	static const uint8_t tables[] = {
		0xFF, 0xC4, 0, 49,                                /* DHT */
		0x00, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* DC 0: twelve 4-bit codes */
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
		0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* AC 0: one 1-bit code, */
		0x00,                                             /* end of block */
		0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0, /* SOS */
	};
	uint8_t *p = out;
	memcpy(p, head, sizeof head);
	p += sizeof head;
	memset(p, 1, 64);
	p += 64;
	uint8_t sof[] = {0xFF, 0xC0, 0, 17, 8, h >> 8, h, w >> 8, w, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0};
	memcpy(p, sof, sizeof sof);
	p += sizeof sof;
	memcpy(p, tables, sizeof tables);
	p += sizeof tables;
	struct bits bw = {p, 0, 0};
	size_t blocks = (size_t)((w + 7) / 8) * ((h + 7) / 8);
	for (size_t i = 0; i < blocks; i++)
		for (int c = 0; c < 3; c++) {
			/* A flat block's DC coefficient is 8 x (value - 128); later blocks repeat it: difference 0. */
			int diff = i ? 0 : (int)(8 * (ycc[c] - 128) + (ycc[c] >= 128 ? 0.5 : -0.5));
			int mag = diff < 0 ? -diff : diff, cat = 0;
			while (mag >> cat)
				cat++;
			put_bits(&bw, cat, 4);
			put_bits(&bw, diff < 0 ? diff + (1 << cat) - 1 : diff, cat);
			put_bits(&bw, 0, 1);
		}
	if (bw.n)
		put_bits(&bw, 0xFF, 8 - bw.n); /* pad with ones */
	p = bw.p;
	*p++ = 0xFF;
	*p++ = 0xD9; /* EOI */
	return p - out;
}

/* render writes the scene into buffer i for frame number seq. Called with mu held. */
static void render(struct simfd *f, uint32_t i, uint64_t seq)
{
	uint32_t rgb = LOAD(dev_of(f)->rgb);
	uint8_t *p = f->mem + (size_t)i * f->stride;
	if (f->fourcc == V4L2_PIX_FMT_YUYV) {
		if (f->filled[i] != rgb + 1)
			yuyv_fill(p, f->width, f->height, rgb);
		f->filled[i] = rgb + 1;
		f->bytesused[i] = f->width * f->height * 2;
		return;
	}
	if (!f->jpeg || f->jpegrgb != rgb) {
		free(f->jpeg);
		f->jpeg = malloc(300 + 2 * (size_t)((f->width + 7) / 8) * ((f->height + 7) / 8));
		if (!f->jpeg)
			abort();
		f->jpeglen = jpeg_encode(f->jpeg, f->width, f->height, rgb);
		f->jpegrgb = rgb;
	}
	size_t n = f->jpeglen < f->sizeimage ? f->jpeglen : f->sizeimage;
	memcpy(p, f->jpeg, n);
	char digits[16];
	snprintf(digits, sizeof digits, "%010llu", (unsigned long long)(seq % 10000000000ULL));
	memcpy(p + JPEG_COUNTER, digits, 10);
	f->bytesused[i] = n;
}

/* produced: how many frames the camera has captured since STREAMON. */
static uint64_t produced(struct simfd *f, int64_t now)
{
	return now > f->t0 ? (uint64_t)((now - f->t0) / f->interval) : 0;
}

/* ready: DQBUF would return a buffer now. Called with mu held. */
static int ready(struct simfd *f, int64_t now)
{
	return f->streaming && f->qlen && !LOAD(dev_of(f)->stalled) && produced(f, now) > f->next;
}

/* due: when the next frame will be captured. */
static int64_t due(struct simfd *f) { return f->t0 + (int64_t)(f->next + 1) * f->interval; }

/* ---- ioctl ---- */

static struct sim_format *cur_format(struct sim_device *d) { return &d->format[LOAD(d->cur_format)]; }

static int find_format(struct sim_device *d, uint32_t fourcc)
{
	for (uint32_t i = 0; i < d->nformats; i++)
		if (d->format[i].fourcc == fourcc)
			return i;
	return -1;
}

static void fill_pix(struct v4l2_pix_format *pix, uint32_t fourcc, uint32_t w, uint32_t h)
{
	memset(pix, 0, sizeof *pix);
	pix->width = w;
	pix->height = h;
	pix->pixelformat = fourcc;
	pix->field = V4L2_FIELD_NONE;
	pix->bytesperline = fourcc == V4L2_PIX_FMT_YUYV ? w * 2 : 0;
	pix->sizeimage = w * h * 2;
	pix->colorspace = V4L2_COLORSPACE_SRGB;
	pix->priv = V4L2_PIX_FMT_PRIV_MAGIC;
}

static void fill_buf(struct simfd *f, struct v4l2_buffer *b, uint32_t i)
{
	memset(b, 0, sizeof *b);
	b->index = i;
	b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	b->memory = V4L2_MEMORY_MMAP;
	b->bytesused = f->bytesused[i];
	b->flags = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_TSTAMP_SRC_SOE;
	for (uint32_t k = 0; k < f->qlen; k++)
		if (f->queue[(f->qhead + k) % MAX_BUFS] == i)
			b->flags |= V4L2_BUF_FLAG_QUEUED;
	b->field = V4L2_FIELD_NONE;
	b->m.offset = i * f->stride;
	b->length = f->sizeimage;
}

/* The one control, Brightness: a real camera has a dozen, which OpenCV
 * only asks for when told to set one. */
static int query_ctrl(uint32_t *id)
{
	if (*id & V4L2_CTRL_FLAG_NEXT_CTRL) {
		if ((*id & ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND)) >= V4L2_CID_BRIGHTNESS)
			return EINVAL;
		*id = V4L2_CID_BRIGHTNESS;
	}
	return *id == V4L2_CID_BRIGHTNESS ? 0 : EINVAL;
}

/* dqbuf waits (unless O_NONBLOCK) for a frame; it drops mu while it
 * sleeps, so f may be closed meanwhile: it looks it up again by fd. */
static int dqbuf(int fd, struct simfd *f, struct v4l2_buffer *b)
{
	uint32_t id = f->id;
	int waited = 0;
	for (;;) {
		if (gone(f))
			return waited ? EIO : ENODEV; /* a wait cut short by the unplug ends in EIO, as in vb2 */
		if (!f->streaming)
			return EINVAL;
		int64_t now = now_ns();
		if (ready(f, now)) {
			uint64_t n = produced(f, now);
			uint32_t i = f->queue[f->qhead];
			f->qhead = (f->qhead + 1) % MAX_BUFS;
			f->qlen--;
			f->next = n; /* frames the application was too slow for are dropped, as a driver does */
			render(f, i, n - 1);
			fill_buf(f, b, i);
			b->sequence = n - 1;
			int64_t ts = f->t0 + (int64_t)n * f->interval;
			b->timestamp.tv_sec = ts / 1000000000;
			b->timestamp.tv_usec = ts % 1000000000 / 1000;
			ADD(dev_of(f)->frames, 1);
			return 0;
		}
		if (f->nonblock)
			return EAGAIN;
		int64_t wait = f->qlen && !LOAD(dev_of(f)->stalled) ? due(f) - now : 10000000;
		if (wait > 10000000)
			wait = 10000000; /* look at the controller's switches every 10 ms */
		pthread_mutex_unlock(&mu);
		struct timespec ts = {0, wait > 0 ? wait : 0};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&mu);
		if (fds[fd] != f || f->id != id)
			return EBADF;
		waited = 1;
	}
}

/* ARG names the request's argument; a request the driver knows fails
 * with EFAULT without one, as the kernel's copy from user space would. */
#define ARG(type, name)        \
	type *name = arg;      \
	if (!name)             \
		return EFAULT

/* sim_ioctl runs one request on a simulated device; it returns 0 or an errno. Called with mu held. */
static int sim_ioctl(int fd, struct simfd *f, unsigned long req, void *arg)
{
	struct sim_device *d = dev_of(f);
	if (gone(f))
		return ENODEV;
	switch (req) {
	case VIDIOC_QUERYCAP: {
		ARG(struct v4l2_capability, c);
		memset(c, 0, sizeof *c);
		snprintf((char *)c->driver, sizeof c->driver, "v4l2sim");
		snprintf((char *)c->card, sizeof c->card, "%.31s", d->card);
		snprintf((char *)c->bus_info, sizeof c->bus_info, "usb-0000:00:14.0-%d", f->dev + 1);
		c->version = LINUX_VERSION_CODE;
		c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT;
		c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
		return 0;
	}
	case VIDIOC_ENUM_FMT: {
		ARG(struct v4l2_fmtdesc, e);
		uint32_t i = e->index;
		if (e->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || i >= d->nformats)
			return EINVAL;
		memset(e, 0, sizeof *e);
		e->index = i;
		e->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		e->pixelformat = d->format[i].fourcc;
		int mjpeg = e->pixelformat == V4L2_PIX_FMT_MJPEG;
		e->flags = mjpeg ? V4L2_FMT_FLAG_COMPRESSED : 0;
		snprintf((char *)e->description, sizeof e->description, mjpeg ? "Motion-JPEG" : "YUYV 4:2:2");
		return 0;
	}
	case VIDIOC_ENUM_FRAMESIZES: {
		ARG(struct v4l2_frmsizeenum, e);
		int fi = find_format(d, e->pixel_format);
		if (fi < 0 || e->index >= d->format[fi].nsizes)
			return EINVAL;
		e->type = V4L2_FRMSIZE_TYPE_DISCRETE;
		e->discrete.width = d->format[fi].width[e->index];
		e->discrete.height = d->format[fi].height[e->index];
		memset(e->reserved, 0, sizeof e->reserved);
		return 0;
	}
	case VIDIOC_ENUM_FRAMEINTERVALS: {
		ARG(struct v4l2_frmivalenum, e);
		int fi = find_format(d, e->pixel_format);
		for (uint32_t s = 0; fi >= 0 && s < d->format[fi].nsizes; s++) {
			struct sim_format *sf = &d->format[fi];
			if (sf->width[s] != e->width || sf->height[s] != e->height)
				continue;
			if (e->index >= sf->nrates[s])
				return EINVAL;
			e->type = V4L2_FRMIVAL_TYPE_DISCRETE;
			e->discrete.numerator = 1;
			e->discrete.denominator = sf->fps[s][e->index];
			memset(e->reserved, 0, sizeof e->reserved);
			return 0;
		}
		return EINVAL;
	}
	case VIDIOC_G_FMT: {
		ARG(struct v4l2_format, fm);
		if (fm->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
			return EINVAL;
		struct sim_format *sf = cur_format(d);
		uint32_t s = LOAD(d->cur_size);
		fill_pix(&fm->fmt.pix, sf->fourcc, sf->width[s], sf->height[s]);
		return 0;
	}
	case VIDIOC_TRY_FMT:
	case VIDIOC_S_FMT: {
		ARG(struct v4l2_format, fm);
		if (fm->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
			return EINVAL;
		/* An unknown format becomes the default one, and the size the
		 * nearest by uvcvideo's measure (the area the two do not share). */
		int fi = find_format(d, fm->fmt.pix.pixelformat);
		if (fi < 0)
			fi = 0;
		struct sim_format *sf = &d->format[fi];
		uint32_t best = 0;
		int64_t bestd = INT64_MAX;
		for (uint32_t s = 0; s < sf->nsizes; s++) {
			int64_t w = sf->width[s], h = sf->height[s], rw = fm->fmt.pix.width, rh = fm->fmt.pix.height;
			int64_t common = (w < rw ? w : rw) * (h < rh ? h : rh);
			int64_t dist = w * h + rw * rh - 2 * common;
			if (dist < bestd)
				best = s, bestd = dist;
		}
		if (req == VIDIOC_S_FMT) {
			if (f->nbufs || held_elsewhere(f) || LOAD(d->busy))
				return EBUSY;
			STORE(d->cur_format, fi);
			STORE(d->cur_size, best);
			STORE(d->cur_rate, 0); /* the size's default rate, as uvcvideo does */
			ADD(d->formats_set, 1);
		}
		fill_pix(&fm->fmt.pix, sf->fourcc, sf->width[best], sf->height[best]);
		return 0;
	}
	case VIDIOC_G_PARM:
	case VIDIOC_S_PARM: {
		ARG(struct v4l2_streamparm, p);
		if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
			return EINVAL;
		struct sim_format *sf = cur_format(d);
		uint32_t s = LOAD(d->cur_size);
		if (req == VIDIOC_S_PARM) {
			if (f->streaming || (held_elsewhere(f) && LOAD(d->streaming)))
				return EBUSY;
			struct v4l2_fract t = p->parm.capture.timeperframe;
			double want = t.numerator && t.denominator ? (double)t.denominator / t.numerator : 0;
			uint32_t best = 0;
			for (uint32_t i = 1; want && i < sf->nrates[s]; i++) {
				double a = sf->fps[s][i] - want, b = sf->fps[s][best] - want;
				if (a * a < b * b)
					best = i;
			}
			STORE(d->cur_rate, best);
		}
		memset(&p->parm, 0, sizeof p->parm);
		p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
		p->parm.capture.timeperframe.numerator = 1;
		p->parm.capture.timeperframe.denominator = sf->fps[s][LOAD(d->cur_rate)];
		return 0;
	}
	case VIDIOC_REQBUFS: {
		ARG(struct v4l2_requestbuffers, r);
		if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP)
			return EINVAL;
		if (held_elsewhere(f) || f->streaming)
			return EBUSY;
		/* Buffers may be freed while mapped: the memfd lives on (vb2 says the same). */
		r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP | V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS;
		r->flags = 0;
		memset(r->reserved, 0, sizeof r->reserved);
		release_buffers(f);
		if (r->count == 0)
			return 0;
		if (LOAD(d->busy) || !CAS(d->owner, 0, f->id))
			return EBUSY;
		STORE(d->owner_pid, getpid());
		struct sim_format *sf = cur_format(d);
		uint32_t s = LOAD(d->cur_size);
		long page = sysconf(_SC_PAGESIZE);
		f->fourcc = sf->fourcc;
		f->width = sf->width[s];
		f->height = sf->height[s];
		f->sizeimage = f->width * f->height * 2;
		f->stride = (f->sizeimage + page - 1) / page * page;
		f->nbufs = r->count < MAX_BUFS ? r->count : MAX_BUFS;
		f->memfd = memfd_create("v4l2sim", MFD_CLOEXEC);
		if (f->memfd < 0 || ftruncate(f->memfd, (off_t)f->nbufs * f->stride) < 0 ||
		    (f->mem = real_mmap(NULL, (size_t)f->nbufs * f->stride, PROT_READ | PROT_WRITE, MAP_SHARED,
					f->memfd, 0)) == MAP_FAILED) {
			f->mem = NULL;
			release_buffers(f);
			return ENOMEM;
		}
		memset(f->filled, 0, sizeof f->filled);
		memset(f->bytesused, 0, sizeof f->bytesused);
		r->count = f->nbufs;
		return 0;
	}
	case VIDIOC_QUERYBUF:
	case VIDIOC_QBUF: {
		ARG(struct v4l2_buffer, b);
		uint32_t i = b->index;
		if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || i >= f->nbufs)
			return EINVAL;
		if (req == VIDIOC_QBUF) {
			if (b->memory != V4L2_MEMORY_MMAP)
				return EINVAL;
			for (uint32_t k = 0; k < f->qlen; k++)
				if (f->queue[(f->qhead + k) % MAX_BUFS] == i)
					return EINVAL; /* already queued */
			f->queue[(f->qhead + f->qlen++) % MAX_BUFS] = i;
		}
		fill_buf(f, b, i);
		return 0;
	}
	case VIDIOC_DQBUF: {
		ARG(struct v4l2_buffer, b);
		if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP)
			return EINVAL;
		return dqbuf(fd, f, b);
	}
	case VIDIOC_STREAMON: {
		ARG(int, type);
		if (*type != V4L2_BUF_TYPE_VIDEO_CAPTURE || !f->nbufs)
			return EINVAL;
		if (LOAD(d->busy))
			return EBUSY;
		if (f->streaming)
			return 0;
		struct sim_format *sf = cur_format(d);
		f->interval = 1000000000LL / sf->fps[LOAD(d->cur_size)][LOAD(d->cur_rate)];
		f->t0 = now_ns();
		f->next = 0;
		f->streaming = 1;
		STORE(d->streaming, f->id);
		ADD(d->streamons, 1);
		return 0;
	}
	case VIDIOC_STREAMOFF: {
		ARG(int, type);
		if (*type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
			return EINVAL;
		stream_off(f);
		return 0;
	}
	case VIDIOC_ENUMINPUT: {
		ARG(struct v4l2_input, in);
		if (in->index != 0)
			return EINVAL;
		memset(in, 0, sizeof *in);
		snprintf((char *)in->name, sizeof in->name, "Camera 1");
		in->type = V4L2_INPUT_TYPE_CAMERA;
		return 0;
	}
	case VIDIOC_G_INPUT:
	case VIDIOC_S_INPUT: {
		ARG(int, input);
		if (req == VIDIOC_G_INPUT)
			*input = 0;
		return *input == 0 ? 0 : EINVAL;
	}
	case VIDIOC_QUERYCTRL: {
		ARG(struct v4l2_queryctrl, q);
		uint32_t id = q->id;
		if (query_ctrl(&id))
			return EINVAL;
		memset(q, 0, sizeof *q);
		q->id = id;
		q->type = V4L2_CTRL_TYPE_INTEGER;
		snprintf((char *)q->name, sizeof q->name, "Brightness");
		q->maximum = 255;
		q->step = 1;
		q->default_value = 128;
		return 0;
	}
	case VIDIOC_QUERY_EXT_CTRL: {
		ARG(struct v4l2_query_ext_ctrl, q);
		uint32_t id = q->id;
		if (query_ctrl(&id))
			return EINVAL;
		memset(q, 0, sizeof *q);
		q->id = id;
		q->type = V4L2_CTRL_TYPE_INTEGER;
		snprintf(q->name, sizeof q->name, "Brightness");
		q->maximum = 255;
		q->step = 1;
		q->default_value = 128;
		q->elem_size = 4;
		q->elems = 1;
		return 0;
	}
	case VIDIOC_G_CTRL:
	case VIDIOC_S_CTRL: {
		ARG(struct v4l2_control, c);
		if (c->id != V4L2_CID_BRIGHTNESS)
			return EINVAL;
		if (req == VIDIOC_S_CTRL)
			STORE(d->brightness, c->value < 0 ? 0 : c->value > 255 ? 255 : c->value);
		c->value = LOAD(d->brightness);
		return 0;
	}
	case VIDIOC_G_PRIORITY:
	case VIDIOC_S_PRIORITY: {
		ARG(uint32_t, prio);
		if (req == VIDIOC_G_PRIORITY)
			*prio = V4L2_PRIORITY_DEFAULT;
		return *prio <= V4L2_PRIORITY_RECORD ? 0 : EINVAL;
	}
	default:
		return ENOTTY; /* what the kernel answers for a request the driver lacks */
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	pthread_once(&once, init);
	if (!is_sim(fd))
		return real_ioctl(fd, req, arg);
	pthread_mutex_lock(&mu);
	int err = fds[fd] ? sim_ioctl(fd, fds[fd], req, arg) : EBADF;
	pthread_mutex_unlock(&mu);
	if (debug)
		fprintf(stderr, "v4l2sim: ioctl(%d, 0x%lx): %s\n", fd, req, strerror(err));
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* ---- mmap, read ---- */

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	pthread_once(&once, init);
	if (!is_sim(fd))
		return real_mmap(addr, len, prot, flags, fd, off);
	pthread_mutex_lock(&mu);
	struct simfd *f = fds[fd];
	int err = !f ? EBADF : gone(f) ? ENODEV : 0;
	/* As vb2: shared mappings only, of one buffer, at the offset QUERYBUF gave. */
	if (!err && (!f->nbufs || !(flags & MAP_SHARED) || off < 0 || off % f->stride ||
		     (uint64_t)off / f->stride >= f->nbufs || len > f->stride))
		err = EINVAL;
	void *p = err ? MAP_FAILED : real_mmap(addr, len, prot, flags, f->memfd, off);
	pthread_mutex_unlock(&mu);
	if (err)
		errno = err;
	return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

ssize_t read(int fd, void *buf, size_t n)
{
	pthread_once(&once, init);
	if (!is_sim(fd))
		return real_read(fd, buf, n);
	/* No read() I/O: uvcvideo has none either (no V4L2_CAP_READWRITE). */
	pthread_mutex_lock(&mu);
	errno = fds[fd] && gone(fds[fd]) ? ENODEV : EINVAL;
	pthread_mutex_unlock(&mu);
	return -1;
}

/* ---- poll, select ---- */

/* revents: a simulated descriptor's poll events now, as vb2 reports them;
 * it lowers *wake to when its next frame is due. Called with mu held. */
static short revents(struct simfd *f, int64_t now, int64_t *wake)
{
	if (gone(f))
		return POLLERR | POLLHUP | POLLPRI;
	if (!f->streaming)
		return POLLERR;
	if (ready(f, now))
		return POLLIN | POLLRDNORM;
	if (f->qlen && !LOAD(dev_of(f)->stalled) && due(f) < *wake)
		*wake = due(f);
	return 0;
}

/* sim_poll is poll over a mix of simulated and real descriptors: the
 * simulated ones are answered here, the real ones by the kernel, and the
 * wait is cut into steps of at most 10 ms so that the controller's
 * switches (unplug, resume) are seen. */
static int sim_poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ns() + timeout_ms * 1000000LL;
	struct pollfd *real = malloc((n ? n : 1) * sizeof *real);
	if (!real) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		int64_t now = now_ns(), wake = now + 10000000;
		int nready = 0;
		if (wake > deadline)
			wake = deadline;
		pthread_mutex_lock(&mu);
		for (nfds_t i = 0; i < n; i++) {
			real[i] = p[i];
			p[i].revents = 0;
			if (is_sim(p[i].fd) && fds[p[i].fd]) {
				p[i].revents = revents(fds[p[i].fd], now, &wake) & (p[i].events | POLLERR | POLLHUP);
				nready += p[i].revents != 0;
				real[i].fd = -1; /* poll skips negative descriptors */
			}
		}
		pthread_mutex_unlock(&mu);
		int64_t wait = nready ? 0 : (wake - now + 999999) / 1000000;
		int r = real_poll(real, n, wait < 0 ? 0 : (int)wait);
		if (r < 0) {
			free(real);
			return -1;
		}
		for (nfds_t i = 0; i < n; i++)
			if (real[i].fd >= 0 && (p[i].revents = real[i].revents))
				nready++;
		if (nready || now_ns() >= deadline) {
			free(real);
			return nready;
		}
	}
}

int poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
	pthread_once(&once, init);
	for (nfds_t i = 0; i < n; i++)
		if (is_sim(p[i].fd))
			return sim_poll(p, n, timeout_ms);
	return real_poll(p, n, timeout_ms);
}

int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	pthread_once(&once, init);
	int sim = 0, n = 0;
	for (int fd = 0; fd < nfds; fd++)
		if ((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex)))
			n++, sim |= is_sim(fd);
	if (!sim)
		return real_select(nfds, rd, wr, ex, tv);
	struct pollfd *p = calloc(n, sizeof *p);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (rd && FD_ISSET(fd, rd) ? POLLIN : 0) | (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
			   (ex && FD_ISSET(fd, ex) ? POLLPRI : 0);
		if (ev)
			p[n++] = (struct pollfd){fd, ev, 0};
	}
	int64_t start = now_ns();
	int timeout_ms = tv ? (int)(tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000) : -1;
	int r = sim_poll(p, n, timeout_ms);
	if (debug)
		fprintf(stderr, "v4l2sim: select(%d, %d ms): %d %s\n", nfds, timeout_ms, r, strerror(r < 0 ? errno : 0));
	if (r >= 0) {
		/* select's view of poll events, as the kernel's POLLIN_SET, POLLOUT_SET and POLLEX_SET */
		r = 0;
		for (int i = 0; i < n; i++) {
			int fd = p[i].fd;
			short e = p[i].revents;
			if (rd && FD_ISSET(fd, rd) && !(e & (POLLIN | POLLRDNORM | POLLHUP | POLLERR)))
				FD_CLR(fd, rd);
			if (wr && FD_ISSET(fd, wr) && !(e & (POLLOUT | POLLWRNORM | POLLERR)))
				FD_CLR(fd, wr);
			if (ex && FD_ISSET(fd, ex) && !(e & POLLPRI))
				FD_CLR(fd, ex);
			r += (rd && FD_ISSET(fd, rd)) + (wr && FD_ISSET(fd, wr)) + (ex && FD_ISSET(fd, ex));
		}
		if (tv) { /* Linux leaves the time not slept in tv */
			int64_t left = tv->tv_sec * 1000000LL + tv->tv_usec - (now_ns() - start) / 1000;
			if (left < 0)
				left = 0;
			tv->tv_sec = left / 1000000;
			tv->tv_usec = left % 1000000;
		}
	}
	free(p);
	return r;
}
