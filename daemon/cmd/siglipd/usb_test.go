package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/internal/testenv/v4l2sim"
)

// TestUSBCamera, as a new user with a USB webcam: `siglipd devices` lists
// the (simulated) camera with its stable name and modes and prints a
// cameras: entry; that entry, pasted into a config beside a file camera,
// gives frames and events on the camera in the mode it asked for. Unplugged,
// the camera is reported and the file camera keeps its rate; replugged
// under another number, its frames are back within 3 s through the by-id
// link. A busy device says what to do.
func TestUSBCamera(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	sim := v4l2sim.Start(t)
	cam := sim.Add(v4l2sim.Device{Number: 50, ID: "usb-Sim_Webcam_C920_50AB-video-index0",
		Path: "pci-0000:00:14.0-usb-0:5:1.0-video-index0", Card: "Sim Webcam C920", Colour: color.RGBA{R: 255, A: 255}})

	out, errOut, code := run(t, sim.Env(), "devices")
	if code != exitOK || !strings.Contains(out, cam.ByID()) || !strings.Contains(out, "MJPG  1920x1080 @ 30/15 fps") {
		t.Fatalf("siglipd devices: exit %d\n%s%s", code, out, errOut)
	}
	entry := out[strings.Index(out, "cameras:\n"):]
	if m := regexp.MustCompile(`(?m)^  - name: (\S+)\n    url: (\S+)\n    format: mjpeg\n    width: 1920\n    height: 1080\n    frame_rate: 30\n`).FindStringSubmatch(entry); m == nil || m[2] != cam.ByID() {
		t.Fatalf("the printed entry:\n%s", entry)
	}
	name := regexp.MustCompile(`name: (\S+)`).FindStringSubmatch(entry)[1]
	// The entry as printed, its label made one the colour model knows, and
	// a file camera beside it.
	entry = strings.Replace(entry, `- name: person
        prompts: ["a person"]`, `- {name: red, threshold: 0.5, min_frames: 1}`, 1)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=blue", Duration: 4 * time.Second})
	port := testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:%d"}
%s  - {name: yard, url: %s, loop: true, fps: 2, labels: [{name: blue}]}
`, t.TempDir(), testenv.Model(t, "colour"), port, entry, video))
	_, stdout, stderr := startBinary(t, lib, cfg, sim.Env()...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	status := func(camera string) httpapi.Camera {
		resp, err := http.Get(base + "/api/status")
		if err != nil {
			return httpapi.Camera{}
		}
		defer resp.Body.Close()
		var st httpapi.Status
		json.NewDecoder(resp.Body).Decode(&st)
		for _, c := range st.Cameras {
			if c.Name == camera {
				return c
			}
		}
		return httpapi.Camera{}
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return status(name).FramesScored >= 3 },
		"frames scored on the USB camera; stderr:\n%s", stderr)
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(stdout.String(), `"camera":"`+name+`","label":"red"`) },
		"the red event of the USB camera; stdout:\n%s", stdout)
	if m := cam.Mode(); m.FourCC != "MJPG" || m.Width != 1920 || m.Height != 1080 || m.FPS != 30 {
		t.Errorf("the camera runs %+v, want MJPG 1920x1080 at 30 fps as the entry asks", m)
	}
	if c := status(name); c.Width != 1920 || c.Height != 1080 {
		t.Errorf("status: %dx%d", c.Width, c.Height)
	}

	// Unplugged: reported, and the file camera goes on.
	cam.Unplug()
	testenv.WaitFor(t, 15*time.Second, func() bool { return status(name).State != "connected" },
		"the unplugged camera to be reported; stderr:\n%s", stderr)
	yard, since := status("yard").FramesSampled, time.Now()
	testenv.WaitFor(t, 10*time.Second, func() bool { return status("yard").FramesSampled >= yard+8 },
		"the file camera to go on at its rate while the USB camera is away")
	if rate := float64(status("yard").FramesSampled-yard) / time.Since(since).Seconds(); rate < 1.5 {
		t.Errorf("the file camera sampled %.2f frames/s while the USB camera was away, want its 2", rate)
	}

	// Replugged under another number: found again through the by-id link.
	before := status(name).FramesSampled
	cam.Replug(51)
	plugged := time.Now()
	testenv.WaitFor(t, 10*time.Second, func() bool { return status(name).FramesSampled > before },
		"frames from the replugged camera; stderr:\n%s", stderr)
	if took := time.Since(plugged); took > 3*time.Second {
		t.Errorf("frames came back %s after the replug (at %s), want within 3 s; stderr:\n%s", took.Round(100*time.Millisecond),
			plugged.Format("15:04:05.000"), stderr)
	}
	t.Logf("frames back %s after the replug", time.Since(plugged).Round(100*time.Millisecond))

	// Busy: one clear error that says what to do.
	cam.Busy(true)
	cam.Unplug()
	cam.Replug(52)
	testenv.WaitFor(t, 15*time.Second, func() bool { return strings.Contains(stderr.String(), "is busy: another program is streaming from it") },
		"the busy device's error; stderr:\n%s", stderr)
}

// TestUSBFaults: a device the user may not open says what to do, and is
// opened once allowed; a mode the camera lacks gives one warning with what
// it chose and what it offers; a camera that stops sending while plugged in
// is reported as stalled within read_timeout + 1 s and streams again when
// it resumes.
func TestUSBFaults(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	sim := v4l2sim.Start(t)
	cam := sim.Add(v4l2sim.Device{Number: 55, ID: "usb-Sim_Cam_55-video-index0", Colour: color.RGBA{B: 255, A: 255}})
	cam.Deny(true)
	port := testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:%d"}
cameras:
  - {name: desk, url: %s, format: mjpeg, width: 1600, height: 1200, read_timeout: 2s, fps: 4, labels: [{name: blue}]}
`, t.TempDir(), testenv.Model(t, "colour"), port, cam.ByID()))
	_, _, stderr := startBinary(t, lib, cfg, sim.Env()...)
	testenv.WaitFor(t, 30*time.Second, func() bool {
		return strings.Contains(stderr.String(), "permission denied: run siglipd as a user in the video group")
	}, "the permission error; stderr:\n%s", stderr)
	cam.Deny(false)
	desk := func() httpapi.Camera {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/status", port))
		if err != nil {
			return httpapi.Camera{}
		}
		defer resp.Body.Close()
		var st httpapi.Status
		json.NewDecoder(resp.Body).Decode(&st)
		if len(st.Cameras) == 0 {
			return httpapi.Camera{}
		}
		return st.Cameras[0]
	}
	testenv.WaitFor(t, 15*time.Second, func() bool { return desk().State == "connected" }, "the camera once allowed; stderr:\n%s", stderr)
	warn := regexp.MustCompile(`msg="the device chose another mode than the config asks; going on with it" .*chose="1920x1080 instead of 1600x1200".*offers="[^"]*MJPG 1920x1080@30`)
	// The child logs the warning before it connects, but its stderr reaches
	// the buffer through a pipe, which may lag the HTTP answer.
	testenv.Eventually(5*time.Second, func() bool { return warn.MatchString(stderr.String()) })
	if n := len(warn.FindAllString(stderr.String(), -1)); n != 1 {
		t.Errorf("%d warnings about the mode, want 1; stderr:\n%s", n, stderr)
	}

	cam.Stall()
	stalled := time.Now()
	testenv.WaitFor(t, 10*time.Second, func() bool { return desk().State == "stalled" }, "the stall to be reported; stderr:\n%s", stderr)
	if took := time.Since(stalled); took > 3*time.Second {
		t.Errorf("the stall was reported after %s, want within read_timeout (2s) + 1 s", took.Round(100*time.Millisecond))
	}
	before := desk().FramesSampled
	cam.Resume()
	testenv.WaitFor(t, 20*time.Second, func() bool { return desk().FramesSampled > before }, "frames after the camera resumed; stderr:\n%s", stderr)
	if n := len(warn.FindAllString(stderr.String(), -1)); n != 1 {
		t.Errorf("after reopening, %d warnings about the same mode, want still 1", n)
	}
}

// TestUSBBusy: a camera another program streams from is an error that
// names that program.
func TestUSBBusy(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	sim := v4l2sim.Start(t)
	cam := sim.Add(v4l2sim.Device{Number: 57, ID: "usb-Sim_Cam_57-video-index0"})
	// Another program: it holds the device open (opened through the
	// simulator, as the shell's redirection calls libc), and the device
	// answers busy.
	other := exec.Command("sh", "-c", "exec sleep 60 < "+cam.Node())
	other.Env = append(os.Environ(), sim.Env()...)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	testenv.WaitFor(t, 10*time.Second, func() bool {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", other.Process.Pid))
		return l == cam.Node()
	}, "the other program to hold %s", cam.Node())
	cam.Busy(true)
	cfg := writeConfig(t, fmt.Sprintf(`state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: ""}
cameras: [{name: desk, url: %s, labels: [{name: blue}]}]
`, t.TempDir(), testenv.Model(t, "colour"), cam.ByID()))
	_, _, stderr := startBinary(t, lib, cfg, sim.Env()...)
	want := fmt.Sprintf("is busy: another program is streaming from it (held by sleep (pid %d))", other.Process.Pid)
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), want) },
		"the busy error naming the program; stderr:\n%s", stderr)
	if n := strings.Count(stderr.String(), "is busy"); n != 1 {
		t.Errorf("%d lines about the busy device, want 1", n)
	}
}
