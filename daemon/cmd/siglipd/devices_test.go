package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/capture"
)

// TestDevicesCommand: without devices `siglipd devices` says so and exits
// 0; a node that does not answer as a V4L2 device is listed with why. (A
// simulated USB camera, with its modes and entry, is tested with the V4L2
// simulator.)
func TestDevicesCommand(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, nil, "devices", "--dev", dir)
	if code != exitOK || !strings.Contains(out, "no video devices in "+dir) {
		t.Errorf("no devices: exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(filepath.Join(dir, "video0"), nil, 0o600)
	out, errOut, code = run(t, nil, "devices", "--dev", dir)
	if code != exitOK || !strings.Contains(out, filepath.Join(dir, "video0")) || !strings.Contains(out, "cannot be asked") {
		t.Errorf("a node that is not a device: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := run(t, nil, "devices", "--bogus"); code != exitUsage {
		t.Errorf("a bad flag: exit %d", code)
	}
}

// TestCameraEntry: the printed entry is a valid camera of the config.
func TestCameraEntry(t *testing.T) {
	d := capture.Device{Node: "/dev/video2", ByID: "/dev/v4l/by-id/usb-Logitech_C920_AB12-video-index0", Card: "HD Pro Webcam C920"}
	e := cameraEntry(d, capture.Mode{Format: "MJPG", Width: 1920, Height: 1080, FPS: 30}, 0)
	for _, want := range []string{"name: hd-pro-webcam-c920-1\n", "url: /dev/v4l/by-id/usb-Logitech_C920_AB12-video-index0\n",
		"format: mjpeg\n", "width: 1920\n", "height: 1080\n", "frame_rate: 30\n"} {
		if !strings.Contains(e, want) {
			t.Errorf("entry lacks %q:\n%s", want, e)
		}
	}
	cfg := writeConfig(t, "model: {path: /m}\nsink: stdout\ncameras:\n"+e)
	if out, errOut, code := run(t, nil, "--config", cfg, "--check"); code != exitOK && strings.Contains(out+errOut, "cameras[0]") {
		t.Errorf("the entry does not validate:\n%s%s", out, errOut)
	}
}
