package capture

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSuggested(t *testing.T) {
	tests := []struct {
		name  string
		modes []Mode
		want  Mode
		ok    bool
	}{
		{"mjpeg over a larger yuyv", []Mode{{"YUYV", 1920, 1080, 5}, {"MJPG", 1280, 720, 30}, {"MJPG", 1920, 1080, 30}, {"MJPG", 1920, 1080, 15}},
			Mode{"MJPG", 1920, 1080, 30}, true},
		{"nothing above 1080p or 30 fps", []Mode{{"MJPG", 3840, 2160, 30}, {"MJPG", 1920, 1080, 60}, {"MJPG", 1280, 720, 30}},
			Mode{"MJPG", 1280, 720, 30}, true},
		{"yuyv only", []Mode{{"YUYV", 640, 480, 30}, {"YUYV", 320, 240, 30}}, Mode{"YUYV", 640, 480, 30}, true},
		{"none", nil, Mode{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Device{Modes: tt.modes}.Suggested()
			if got != tt.want || ok != tt.ok {
				t.Errorf("Suggested = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := offers([]Mode{{"MJPG", 1920, 1080, 30}, {"MJPG", 1280, 720, 30}, {"YUYV", 640, 480, 0}}); got != "MJPG 1920x1080@30 1280x720@30, YUYV 640x480" {
		t.Errorf("offers = %q", got)
	}
}

// TestDeviceErrors: the two errors a USB camera user meets say what to do.
func TestDeviceErrors(t *testing.T) {
	for _, tt := range []struct {
		errno syscall.Errno
		want  []string
	}{
		{syscall.EBUSY, []string{"busy", "fuser -v /dev/video0"}},
		{syscall.EACCES, []string{"permission denied", "video group", "SupplementaryGroups=video", "DeviceAllow=/dev/video0", "--device /dev/video0"}},
		{syscall.ENODEV, []string{"unplugged?"}},
	} {
		msg := deviceError("/dev/video0", tt.errno).Error()
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", tt.errno, msg, w)
			}
		}
	}
}

// TestDevicesNone: a folder without video devices lists none; a node that
// is not a V4L2 device is listed with the reason it could not be asked.
func TestDevicesNone(t *testing.T) {
	dir := t.TempDir()
	if d := Devices(dir); len(d) != 0 {
		t.Fatalf("no devices: %+v", d)
	}
	os.WriteFile(filepath.Join(dir, "video3"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "videox"), nil, 0o600)
	d := Devices(dir)
	if len(d) != 1 || d[0].Node != filepath.Join(dir, "video3") || d[0].Err == nil {
		t.Fatalf("a file named video3: %+v", d)
	}
}
