// Package v4l2sim simulates USB cameras for tests: V4L2 devices that
// OpenCV, v4l2-ctl or any program calling libc opens, configures and
// streams from as if a kernel driver stood behind /dev/videoN. Machines
// here have no camera, no v4l2loopback and no CUSE, so the kernel's part is
// played by an LD_PRELOAD library (csrc/v4l2sim.c, built here with the
// system C compiler) that answers open, close, ioctl, mmap, select, poll
// and read for the simulated nodes and passes everything else to libc.
//
// # Use
//
// The process that opens the device must start with the library
// preloaded. A test that runs a child (the siglipd binary, a helper) gives
// it Env:
//
//	sim := v4l2sim.Start(t)
//	cam := sim.Add(v4l2sim.Device{Number: 7, ID: "usb-Sim_Cam_1234-video-index0"})
//	cmd.Env = append(os.Environ(), sim.Env()...)
//
// A package whose tests open the device in the test process itself (capture
// through OpenCV) calls Reexec from TestMain: the test binary re-executes
// itself once with the library preloaded, and Start then controls the
// devices of that same process. V4L2SIM_DEBUG=1 in the environment makes
// the library log every request on a simulated device, and every select,
// to standard error.
//
// # Contract
//
//   - Start, Add and every Dev method are called from the test's goroutines;
//     a Sim is safe for concurrent use. Devices are removed (unplugged, nodes
//     and links deleted) when the test ends; nothing is left to close.
//   - Add and Replug create real filesystem entries, because Go's own
//     os.Stat, os.Readlink and filepath.EvalSymlinks do not go through libc:
//     /dev/videoN (a character node 81:N, as the kernel's, or an empty file
//     where mknod is refused) and the links /dev/v4l/by-id/ID and
//     /dev/v4l/by-path/PATH pointing to ../../videoN, as udev makes them.
//     That needs root (tests and CI run as root); Start skips or fails
//     (testenv.Need) otherwise. The tests of several packages run at once,
//     so each package picks its own device numbers; a number held by
//     another test process is refused (a lock under os.TempDir), a node
//     left by a killed test is replaced, and a node of a real device
//     (/sys/class/video4linux/videoN) is never touched.
//   - The controller and the library share a small state file, mapped by
//     both: a switch (SetColour, Stall, Unplug, ...) is seen by the next
//     call on the device, and by a poll or select within 10 ms. Counters
//     come back the same way.
//   - Calls the library sees are those made through libc's symbols: OpenCV
//     4.6's V4L2 backend, v4l2-ctl and v4l2-compliance (without -w). Go's
//     own syscalls bypass it: code under test must issue its V4L2 ioctls
//     through cgo (libc) to meet the simulated device. Descriptors must be
//     closed through libc's close; dup of a device descriptor is not
//     followed; paths must be absolute (open of "/dev/..." only).
//   - Signals interrupt a wait in select or poll with EINTR, as in the
//     kernel; OpenCV then fails the read, and in a Go process Go's
//     preemption signal does that a few times a minute
//     (docs/measurements.md). Tests that count failed reads turn it off
//     with GODEBUG=asyncpreemptoff=1, as this package's own do.
//
// # What it models
//
// QUERYCAP (driver "v4l2sim", the card given, bus "usb-0000:00:14.0-K"
// for slot K), ENUM_FMT, ENUM_FRAMESIZES and ENUM_FRAMEINTERVALS (discrete
// sizes and rates), G/S/TRY_FMT (an unknown format becomes the first; a
// size it lacks becomes the nearest by uvcvideo's measure; S_FMT resets the
// rate to the size's first), G/S_PARM (the nearest rate), REQBUFS (MMAP
// only), QUERYBUF, QBUF, DQBUF, STREAMON/OFF, ENUMINPUT/G_INPUT/S_INPUT (one
// camera input), one control (Brightness: QUERYCTRL, QUERY_EXT_CTRL,
// G_CTRL, S_CTRL; any other id is EINVAL), G/S_PRIORITY without effect;
// every other request is ENOTTY. The format is the device's, shared by
// every open, and reset to the default (first format, size and rate) at
// replug. As in uvcvideo, one open at a time holds the buffers: another
// one's REQBUFS and S_FMT are EBUSY meanwhile, and its S_PARM while they
// stream; an open of a process that died without closing holds nothing.
// v4l-utils tell a video node by /sys/dev/char/81:N/uevent, which no
// driver made: the library answers fopen of that file.
//
// Frames come at the rate set, from STREAMON on: frame k is captured at
// STREAMON + (k+1)/fps; DQBUF returns the latest one (its number in
// sequence, gaps where the reader was slow) and select/poll report it
// ready then, honouring their timeouts. YUYV frames are one colour (BT.601
// limited range, as OpenCV converts them); MJPEG frames are real baseline
// JPEGs of that colour, with the frame number in a COM segment. Unplug
// makes every call on a descriptor opened before it fail with ENODEV (a
// DQBUF waiting at that moment gets EIO), poll report POLLERR|POLLHUP, and
// removes the node and links; Replug brings them back, possibly under
// another number, and old descriptors stay dead. Stall stops frames
// without an error; Busy makes open, S_FMT, REQBUFS and STREAMON fail with
// EBUSY; Deny makes open fail with EACCES.
//
// # What it does not model
//
// No kernel: no /sys/class/video4linux or media-controller entries, no
// udev events (nodes and links come and go as files). No USB
// bandwidth limits, no frame-size-dependent timing, no stale frames (a
// driver with four queued buffers can hand out a frame four intervals old;
// here a buffer is filled when it is dequeued), no read() I/O (uvcvideo has
// none), no USERPTR or DMABUF buffers, no multi-planar formats, no
// extended controls, events or priority semantics, no epoll (OpenCV 4.6
// uses select and poll). The scene is one colour. What v4l2-compliance
// thinks of it is in docs/02-cameras.md.
package v4l2sim

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siglipd/siglipd/internal/testenv"
)

//go:embed csrc/v4l2sim.c
var source []byte

// Environment: the state file the library maps; an error Reexec met, for
// Start to report; the state folder of a re-executed test binary.
const (
	envState  = "V4L2SIM_STATE"
	envError  = "V4L2SIM_ERROR"
	envReexec = "V4L2SIM_REEXEC"
)

// Size is a frame size in pixels.
type Size struct{ Width, Height int }

// Format is one pixel format a device offers, with its sizes and frame
// rates. The first size, and the first rate of each, are the defaults.
type Format struct {
	FourCC  string // "MJPG" or "YUYV"
	Sizes   []Size
	FPS     []int          // frame rates of every size, unless SizeFPS says otherwise
	SizeFPS map[Size][]int // frame rates of particular sizes (USB 2.0 cameras: YUYV 1080p at 5 fps)
}

// Device describes a simulated camera.
type Device struct {
	Number  int         // N of /dev/videoN
	ID      string      // name of its /dev/v4l/by-id/ link; "" for none
	Path    string      // name of its /dev/v4l/by-path/ link; "" for none
	Card    string      // QUERYCAP's card (the USB product name); "Sim Cam" when empty
	Formats []Format    // DefaultFormats when empty; the first is the default format
	Colour  color.Color // the scene; mid grey when nil
}

// DefaultFormats are those of a typical USB 2.0 webcam: YUYV first (the
// default, 640×480 at 30 fps), large YUYV frames only at low rates, and
// MJPEG up to 1080p at 30 fps.
var DefaultFormats = []Format{
	{FourCC: "YUYV", Sizes: []Size{{640, 480}, {1280, 720}, {1920, 1080}}, FPS: []int{30, 15},
		SizeFPS: map[Size][]int{{1280, 720}: {10}, {1920, 1080}: {5}}},
	{FourCC: "MJPG", Sizes: []Size{{1920, 1080}, {1280, 720}, {640, 480}}, FPS: []int{30, 15}},
}

// Mode is what a device is set to: format, size and frame rate.
type Mode struct {
	FourCC        string
	Width, Height int
	FPS           int
}

// Counters are what the device has seen since Add.
type Counters struct {
	Opens      int // successful opens
	FormatsSet int // successful S_FMT
	Frames     int // buffers handed out by DQBUF
	StreamOns  int
}

// The shared state file: struct sim_state of csrc/v4l2sim.c, every field
// a 32-bit word. Indices are in words.
const (
	stateMagic   = 0x6d697332
	stateVersion = 1
	maxDevices   = 16
	maxFormats   = 4
	maxSizes     = 8
	maxRates     = 4
	headerWords  = 4
	formatWords  = 2 + 3*maxSizes + maxSizes*maxRates
	deviceWords  = wFormat + maxFormats*formatWords
	stateSize    = 4 * (headerWords + maxDevices*deviceWords)
)

// Word indices in struct sim_device.
const (
	wUsed = iota
	wNumber
	wPresent
	wGen
	wStalled
	wBusy
	wDenied
	wRGB
	wOwner
	wOwnerPID
	wStreaming
	wCurFormat
	wCurSize
	wCurRate
	wBrightness
	wOpens
	wFormatsSet
	wFrames
	wStreamOns
	wCard     // 8 words
	wNFormats = wCard + 8
	wFormat   = wNFormats + 1
)

// Sim is a set of simulated devices and the library that serves them.
type Sim struct {
	t     testing.TB
	lib   string
	state string
	words []uint32 // the mapped state file

	mu   sync.Mutex
	devs []*Dev
}

// Dev is one simulated device.
type Dev struct {
	sim  *Sim
	slot int
	cfg  Device

	mu     sync.Mutex
	number int
	lock   *os.File // flock on the number while plugged
}

// slotMu guards slot allocation in a state file shared by several Sims of
// one process (a re-executed test binary).
var slotMu sync.Mutex

// Start builds the library (once per test binary), makes a state file and
// returns the simulator; its devices go when t ends. In a binary that
// Reexec restarted, it uses the state of the library already loaded.
func Start(t testing.TB) *Sim {
	t.Helper()
	if msg := os.Getenv(envError); msg != "" {
		testenv.Need(t, false, "the V4L2 simulator ("+msg+")")
	}
	testenv.Need(t, os.Geteuid() == 0, "root (the V4L2 simulator creates /dev/video nodes)")
	lib, err := build()
	testenv.Need(t, err == nil, fmt.Sprintf("a C compiler for the V4L2 simulator (%v)", err))
	s := &Sim{t: t, lib: lib, state: os.Getenv(envState)}
	if s.state == "" || !Preloaded() {
		s.state = filepath.Join(t.TempDir(), "v4l2sim.state")
		if err := newState(s.state); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(s.state, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, stateSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatalf("v4l2sim: map %s: %v", s.state, err)
	}
	s.words = unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), stateSize/4)
	t.Cleanup(func() {
		s.mu.Lock()
		devs := s.devs
		s.mu.Unlock()
		for _, d := range devs {
			d.remove()
		}
		syscall.Munmap(mem)
	})
	return s
}

// Env is what a child process needs to see the devices: LD_PRELOAD and
// the state file. Append it to os.Environ().
func (s *Sim) Env() []string {
	return []string{"LD_PRELOAD=" + s.lib, envState + "=" + s.state}
}

// Preloaded reports whether this process runs with the library loaded (a
// test binary that Reexec restarted).
func Preloaded() bool {
	maps, err := os.ReadFile("/proc/self/maps")
	return err == nil && strings.Contains(string(maps), "/libv4l2sim.so")
}

// Reexec, called from TestMain, runs the test binary again with the
// library preloaded, so that OpenCV in the test process meets the
// simulated devices, and exits with its status. In the re-executed binary
// it runs the tests. When the library cannot be built it runs the tests
// as they are, and Start reports why.
func Reexec(m *testing.M) {
	if dir := os.Getenv(envReexec); dir != "" {
		// Children keep the library and the state, but are not the
		// re-executed binary: the folder is this process's to remove.
		os.Unsetenv(envReexec)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	err := reexec()
	os.Setenv(envError, err.Error())
	os.Exit(m.Run())
}

// reexec replaces the process; it returns only what stopped it.
func reexec() error {
	lib, err := build()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "v4l2sim-")
	if err != nil {
		return err
	}
	state := filepath.Join(dir, "v4l2sim.state")
	if err := newState(state); err != nil {
		return err
	}
	preload := lib
	if old := os.Getenv("LD_PRELOAD"); old != "" {
		preload += " " + old
	}
	env := append(os.Environ(), "LD_PRELOAD="+preload, envState+"="+state, envReexec+"="+dir)
	err = syscall.Exec(exe, os.Args, env)
	os.RemoveAll(dir)
	return fmt.Errorf("v4l2sim: re-exec with LD_PRELOAD: %w", err)
}

var (
	buildOnce sync.Once
	builtLib  string
	buildErr  error
)

// build compiles the library into a folder named by its source's hash
// under os.TempDir, unless it is there already; concurrent test binaries
// each write their own file and rename it into place.
func build() (string, error) {
	buildOnce.Do(func() {
		sum := sha256.Sum256(source)
		dir := filepath.Join(os.TempDir(), "v4l2sim-lib-"+hex.EncodeToString(sum[:6]))
		builtLib = filepath.Join(dir, "libv4l2sim.so")
		if _, err := os.Stat(builtLib); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp := fmt.Sprintf("%s.%d", builtLib, os.Getpid())
		src := tmp + ".c"
		if err := os.WriteFile(src, source, 0o644); err != nil {
			buildErr = err
			return
		}
		defer os.Remove(src)
		cc := strings.Fields(os.Getenv("CC"))
		if len(cc) == 0 {
			cc = []string{"cc"}
		}
		args := append(cc[1:], "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, src, "-ldl", "-lpthread")
		if out, err := exec.Command(cc[0], args...).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("v4l2sim: %s: %v\n%s", strings.Join(cc, " "), err, out)
			return
		}
		buildErr = os.Rename(tmp, builtLib)
	})
	return builtLib, buildErr
}

// newState writes an empty state file.
func newState(path string) error {
	b := make([]byte, stateSize)
	for i, v := range []uint32{stateMagic, stateVersion, 4 * deviceWords, 0} {
		*(*uint32)(unsafe.Pointer(&b[4*i])) = v
	}
	return os.WriteFile(path, b, 0o644)
}

// word is field w of device slot.
func (s *Sim) word(slot, w int) *uint32 { return &s.words[headerWords+slot*deviceWords+w] }

// Add plugs in a device: its slot, its node and its links. It fails the
// test on a description the simulator cannot serve.
func (s *Sim) Add(d Device) *Dev {
	s.t.Helper()
	if len(d.Formats) == 0 {
		d.Formats = DefaultFormats
	}
	if d.Card == "" {
		d.Card = "Sim Cam"
	}
	if d.Colour == nil {
		d.Colour = color.RGBA{128, 128, 128, 255}
	}
	if err := d.check(); err != nil {
		s.t.Fatalf("v4l2sim: %v", err)
	}
	slotMu.Lock()
	slot := -1
	for i := 0; i < maxDevices && slot < 0; i++ {
		if atomic.LoadUint32(s.word(i, wUsed)) == 0 {
			slot = i
		}
	}
	if slot < 0 {
		slotMu.Unlock()
		s.t.Fatalf("v4l2sim: more than %d devices", maxDevices)
	}
	dev := &Dev{sim: s, slot: slot, cfg: d}
	for w := range deviceWords {
		atomic.StoreUint32(s.word(slot, w), 0)
	}
	card := make([]byte, 32)
	copy(card, d.Card)
	for i := range 8 {
		*s.word(slot, wCard+i) = *(*uint32)(unsafe.Pointer(&card[4*i]))
	}
	*s.word(slot, wNFormats) = uint32(len(d.Formats))
	for i, f := range d.Formats {
		base := wFormat + i*formatWords
		*s.word(slot, base) = fourcc(f.FourCC)
		*s.word(slot, base+1) = uint32(len(f.Sizes))
		for j, sz := range f.Sizes {
			rates := f.FPS
			if r, ok := f.SizeFPS[sz]; ok {
				rates = r
			}
			*s.word(slot, base+2+j) = uint32(sz.Width)
			*s.word(slot, base+2+maxSizes+j) = uint32(sz.Height)
			*s.word(slot, base+2+2*maxSizes+j) = uint32(len(rates))
			for k, r := range rates {
				*s.word(slot, base+2+3*maxSizes+j*maxRates+k) = uint32(r)
			}
		}
	}
	atomic.StoreUint32(s.word(slot, wBrightness), 128)
	dev.SetColour(d.Colour)
	atomic.StoreUint32(s.word(slot, wUsed), 1) // last: the library reads the rest after it
	slotMu.Unlock()

	s.mu.Lock()
	s.devs = append(s.devs, dev)
	s.mu.Unlock()
	if err := dev.plug(d.Number); err != nil {
		s.t.Fatal(err)
	}
	return dev
}

func (d *Device) check() error {
	if d.Number < 0 || len(d.Card) > 31 || len(d.Formats) > maxFormats ||
		strings.ContainsRune(d.ID+d.Path, '/') {
		return fmt.Errorf("device %+v: number, card (31 bytes), formats (%d) or link names out of range",
			*d, maxFormats)
	}
	for _, f := range d.Formats {
		if f.FourCC != "MJPG" && f.FourCC != "YUYV" || len(f.Sizes) == 0 || len(f.Sizes) > maxSizes {
			return fmt.Errorf("format %s: only MJPG and YUYV, with 1 to %d sizes", f.FourCC, maxSizes)
		}
		for _, sz := range f.Sizes {
			rates := f.FPS
			if r, ok := f.SizeFPS[sz]; ok {
				rates = r
			}
			if sz.Width < 16 || sz.Height < 16 || sz.Width%2 != 0 || sz.Width > 8192 || sz.Height > 8192 {
				return fmt.Errorf("format %s: size %dx%d: width and height 16 to 8192, width even",
					f.FourCC, sz.Width, sz.Height)
			}
			if len(rates) == 0 || len(rates) > maxRates {
				return fmt.Errorf("format %s %dx%d: 1 to %d frame rates", f.FourCC, sz.Width, sz.Height, maxRates)
			}
			for _, r := range rates {
				if r < 1 || r > 1000 {
					return fmt.Errorf("format %s %dx%d: frame rate %d", f.FourCC, sz.Width, sz.Height, r)
				}
			}
		}
	}
	return nil
}

func fourcc(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// Node is the device's node, /dev/videoN (its last one while unplugged).
func (d *Dev) Node() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return node(d.number)
}

func node(n int) string { return "/dev/video" + strconv.Itoa(n) }

// ByID is the device's stable name under /dev/v4l/by-id/, "" without an ID.
func (d *Dev) ByID() string { return link("by-id", d.cfg.ID) }

// ByPath is the device's name under /dev/v4l/by-path/, "" without a Path.
func (d *Dev) ByPath() string { return link("by-path", d.cfg.Path) }

func link(kind, name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join("/dev/v4l", kind, name)
}

// Unplug pulls the device out: calls on descriptors already open fail
// with ENODEV, poll reports POLLERR, and the node and its links go.
func (d *Dev) Unplug() {
	d.sim.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unplugLocked()
}

func (d *Dev) unplugLocked() {
	if d.lock == nil {
		return
	}
	atomic.StoreUint32(d.word(wPresent), 0)
	atomic.AddUint32(d.word(wGen), 1)
	for _, l := range []string{d.ByID(), d.ByPath()} {
		if t, err := os.Readlink(l); l != "" && err == nil && t == "../../video"+strconv.Itoa(d.number) {
			os.Remove(l)
		}
	}
	os.Remove(node(d.number))
	d.lock.Close() // releases the flock
	d.lock = nil
}

// Replug plugs the device back in as /dev/videoN, its links following,
// with its default format and no stall; Busy and Deny stay as they were.
// Descriptors opened before the unplug stay dead.
func (d *Dev) Replug(number int) {
	d.sim.t.Helper()
	d.mu.Lock()
	d.unplugLocked()
	d.mu.Unlock()
	for _, w := range []int{wOwner, wOwnerPID, wStreaming, wCurFormat, wCurSize, wCurRate, wStalled} {
		atomic.StoreUint32(d.word(w), 0)
	}
	if err := d.plug(number); err != nil {
		d.sim.t.Fatal(err)
	}
}

// plug claims number, makes the node and links and marks the device
// present. The node comes last, as udev makes it once the driver is ready.
func (d *Dev) plug(number int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	lock, err := claim(number)
	if err != nil {
		return err
	}
	path := node(number)
	if _, err := os.Lstat(path); err == nil {
		if _, err := os.Stat(fmt.Sprintf("/sys/class/video4linux/video%d", number)); err == nil {
			lock.Close()
			return fmt.Errorf("v4l2sim: %s is a real device; pick another number", path)
		}
		os.Remove(path) // left by a simulator that was killed: nobody holds its lock
	}
	d.number, d.lock = number, lock
	atomic.StoreUint32(d.word(wNumber), uint32(number))
	atomic.StoreUint32(d.word(wPresent), 1)
	err = unix.Mknod(path, unix.S_IFCHR|0o660, int(unix.Mkdev(81, uint32(number))))
	if errors.Is(err, unix.EPERM) {
		err = os.WriteFile(path, nil, 0o660)
	}
	if err != nil {
		return fmt.Errorf("v4l2sim: make %s: %w", path, err)
	}
	for _, l := range []string{d.ByID(), d.ByPath()} {
		if l == "" {
			continue
		}
		if err := relink(l, number); err != nil {
			return err
		}
	}
	return nil
}

// claim locks /dev/videoN for this process: an flock on a file under
// os.TempDir, which the kernel releases if the process dies.
func claim(number int) (*os.File, error) {
	dir := filepath.Join(os.TempDir(), "v4l2sim-locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("video%d.lock", number)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("v4l2sim: %s is in use by another simulated device (another test?): %w", node(number), err)
	}
	return f, nil
}

// relink points the link l at ../../videoN, replacing one left by a
// killed simulator but not one of a device still plugged in.
func relink(l string, number int) error {
	if old, err := os.Readlink(l); err == nil {
		var n int
		if _, err := fmt.Sscanf(old, "../../video%d", &n); err == nil && n != number {
			f, err := claim(n)
			if err != nil {
				return fmt.Errorf("v4l2sim: %s names %s, which is plugged in", l, node(n))
			}
			f.Close()
		}
		os.Remove(l)
	}
	// Another test process may remove the folder between the two calls, as
	// its last device goes (remove): then make it again.
	var err error
	for range 3 {
		if err = os.MkdirAll(filepath.Dir(l), 0o755); err == nil {
			if err = os.Symlink("../../video"+strconv.Itoa(number), l); !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("v4l2sim: link %s: %w", l, err)
	}
	return nil
}

// remove unplugs the device for good and frees its slot.
func (d *Dev) remove() {
	d.mu.Lock()
	d.unplugLocked()
	d.mu.Unlock()
	slotMu.Lock()
	atomic.StoreUint32(d.word(wUsed), 0)
	slotMu.Unlock()
	for _, dir := range []string{"/dev/v4l/by-id", "/dev/v4l/by-path", "/dev/v4l"} {
		os.Remove(dir) // only when empty, as udev leaves it
	}
}

func (d *Dev) word(w int) *uint32 { return d.sim.word(d.slot, w) }

func flag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Stall stops frames: DQBUF has nothing, poll and select wait out their
// timeouts. Resume starts them again.
func (d *Dev) Stall()  { atomic.StoreUint32(d.word(wStalled), 1) }
func (d *Dev) Resume() { atomic.StoreUint32(d.word(wStalled), 0) }

// Busy(true) plays another program holding the device: open fails with
// EBUSY, and so do S_FMT, REQBUFS and STREAMON on descriptors already open.
func (d *Dev) Busy(on bool) { atomic.StoreUint32(d.word(wBusy), flag(on)) }

// Deny(true) makes open fail with EACCES, as for a user outside the video
// group.
func (d *Dev) Deny(on bool) { atomic.StoreUint32(d.word(wDenied), flag(on)) }

// SetColour sets the scene's colour; the next frame shows it.
func (d *Dev) SetColour(c color.Color) {
	r, g, b, _ := c.RGBA()
	atomic.StoreUint32(d.word(wRGB), r>>8<<16|g>>8<<8|b>>8)
}

// Mode is what the device is set to now.
func (d *Dev) Mode() Mode {
	// The library stores format, size and rate one after the other: an
	// index read between two stores may be out of range for the others.
	at := func(w, n int) int { return min(int(atomic.LoadUint32(d.word(w))), n-1) }
	f := d.cfg.Formats[at(wCurFormat, len(d.cfg.Formats))]
	sz := f.Sizes[at(wCurSize, len(f.Sizes))]
	rates := f.FPS
	if r, ok := f.SizeFPS[sz]; ok {
		rates = r
	}
	return Mode{FourCC: f.FourCC, Width: sz.Width, Height: sz.Height, FPS: rates[at(wCurRate, len(rates))]}
}

// Counters are the device's counters since Add.
func (d *Dev) Counters() Counters {
	get := func(w int) int { return int(atomic.LoadUint32(d.word(w))) }
	return Counters{Opens: get(wOpens), FormatsSet: get(wFormatsSet), Frames: get(wFrames), StreamOns: get(wStreamOns)}
}
