package capture

/*
#include <stdlib.h>
#include "v4l2query.h"
*/
import "C"

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Devices and their modes, for `siglipd devices` and for clear open
// errors. The V4L2 questions are asked in C through libc (v4l2query.c), as
// OpenCV's V4L2 backend asks: a device the tests simulate under LD_PRELOAD
// answers them as it answers OpenCV. The stable names are the /dev/v4l
// links udev makes, read from the file system.

// Device is a video capture device and what it offers.
type Device struct {
	Node    string // /dev/videoN
	ByID    string // /dev/v4l/by-id/… link to it; "" when udev made none
	ByPath  string // /dev/v4l/by-path/… link to it
	Driver  string
	Card    string // the camera's name, as its driver gives it
	BusInfo string
	Modes   []Mode
	// Err is why the device could not be asked (busy, not allowed); its
	// Modes are then unknown.
	Err error
}

// Mode is one pixel format, size and frame rate a device offers. FPS is 0
// when the device does not say.
type Mode struct {
	Format string // FourCC
	Width  int
	Height int
	FPS    float64
}

// URL is how a config should name the device: its by-id link (the camera,
// wherever it is plugged), else its by-path link (the port), else the node.
func (d Device) URL() string {
	return cmp.Or(d.ByID, d.ByPath, d.Node)
}

// Suggested is the mode a config entry asks for: MJPEG when offered (USB
// 2.0 carries large frames only compressed), at the largest size up to
// 1920×1080 (the model looks at 224–384 pixels; more only costs decoding),
// at its fastest rate up to 30 fps. false when the device offers nothing
// this can read.
func (d Device) Suggested() (Mode, bool) {
	var best Mode
	found := false
	better := func(m, than Mode) bool {
		mj, tj := m.Format == "MJPG", than.Format == "MJPG"
		if mj != tj {
			return mj
		}
		if a, b := m.Width*m.Height, than.Width*than.Height; a != b {
			return a > b
		}
		return m.FPS > than.FPS
	}
	for _, m := range d.Modes {
		if m.Width*m.Height > 1920*1080 || m.FPS > 30 || m.Width == 0 {
			continue
		}
		if !found || better(m, best) {
			best, found = m, true
		}
	}
	return best, found
}

// Devices lists the video capture devices: every /dev/videoN that answers
// as one (metadata nodes, which many webcams add, are left out), and those
// that could not be asked (busy, not allowed), with Err. devDir is /dev
// (a test's folder in tests).
func Devices(devDir string) []Device {
	entries, _ := os.ReadDir(devDir)
	links := map[string][2]string{} // node → by-id, by-path
	for i, kind := range []string{"by-id", "by-path"} {
		dir := filepath.Join(devDir, "v4l", kind)
		names, _ := os.ReadDir(dir)
		for _, n := range names {
			node, err := filepath.EvalSymlinks(filepath.Join(dir, n.Name()))
			if err != nil {
				continue
			}
			l := links[node]
			if l[i] == "" || strings.HasSuffix(n.Name(), "video-index0") {
				l[i] = filepath.Join(dir, n.Name())
			}
			links[node] = l
		}
	}
	var out []Device
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "video")
		if _, err := strconv.Atoi(n); !ok || err != nil {
			continue
		}
		node := filepath.Join(devDir, e.Name())
		real, _ := filepath.EvalSymlinks(node)
		d := queryDevice(node)
		if d.Err == nil && d.Driver == "" {
			continue // not a capture device
		}
		d.ByID, d.ByPath = links[real][0], links[real][1]
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return nodeNumber(a.Node) - nodeNumber(b.Node) })
	return out
}

func nodeNumber(node string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(node), "video"))
	return n
}

// queryDevice asks one node; a node that is not a capture device comes
// back with no Driver and no Err.
func queryDevice(node string) Device {
	d := Device{Node: node}
	info := (*C.siglipd_device_info)(C.malloc(C.sizeof_siglipd_device_info))
	defer C.free(unsafe.Pointer(info))
	cpath := C.CString(node)
	defer C.free(unsafe.Pointer(cpath))
	C.siglipd_v4l2_query(cpath, info)
	if info.err != 0 {
		d.Err = deviceError(node, syscall.Errno(info.err))
		return d
	}
	if info.capture == 0 {
		return d
	}
	d.Driver, d.Card, d.BusInfo = C.GoString(&info.driver[0]), C.GoString(&info.card[0]), C.GoString(&info.bus_info[0])
	for _, m := range unsafe.Slice(&info.modes[0], int(info.nmodes)) {
		mode := Mode{Format: fourccString(uint32(m.fourcc)), Width: int(m.width), Height: int(m.height)}
		if m.num > 0 {
			mode.FPS = float64(m.den) / float64(m.num)
		}
		d.Modes = append(d.Modes, mode)
	}
	return d
}

// deviceError says what to do about a device that cannot be opened: the
// two causes a user meets are another program holding it and a missing
// permission.
func deviceError(node string, errno syscall.Errno) error {
	switch {
	case errors.Is(errno, syscall.EBUSY):
		who := "find it with: fuser -v " + node
		if h := holders(node); h != "" {
			who = h
		}
		return fmt.Errorf("%s is busy: another program is streaming from it (%s); "+
			"a USB camera serves one program at a time", node, who)
	case errors.Is(errno, syscall.EACCES), errors.Is(errno, syscall.EPERM):
		return fmt.Errorf("%s: permission denied: run siglipd as a user in the video group (usermod -aG video USER); "+
			"under systemd add SupplementaryGroups=video (and DeviceAllow=%s rw if the unit restricts devices); "+
			"in Docker pass --device %s (and --group-add video)", node, node, node)
	case errors.Is(errno, syscall.ENOENT), errors.Is(errno, syscall.ENODEV), errors.Is(errno, syscall.ENXIO):
		return fmt.Errorf("%s: no such device (unplugged?)", node)
	}
	return fmt.Errorf("%s: %w", node, errno)
}

// offers sums up modes for a log line: "MJPG 1920x1080@30 1280x720@30, YUYV 640x480@30".
func offers(modes []Mode) string {
	var parts []string
	last := ""
	for _, m := range modes {
		s := fmt.Sprintf("%dx%d", m.Width, m.Height)
		if m.FPS > 0 {
			s += "@" + strconv.FormatFloat(m.FPS, 'f', -1, 64)
		}
		if m.Format != last {
			parts, last = append(parts, m.Format+" "+s), m.Format
			continue
		}
		parts[len(parts)-1] += " " + s
	}
	return strings.Join(parts, ", ")
}

// holders names the other processes that have node open ("motion (pid
// 812)"), from /proc; "" when none can be seen (another user's processes
// are not readable without root).
func holders(node string) string {
	want, err := os.Stat(node)
	if err != nil {
		return ""
	}
	procs, _ := os.ReadDir("/proc")
	var found []string
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			fi, err := os.Stat(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !os.SameFile(fi, want) {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			found = append(found, fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid))
			break
		}
	}
	if len(found) == 0 {
		return ""
	}
	return "held by " + strings.Join(found, ", ")
}
