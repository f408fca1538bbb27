package infer

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/infer/oip"
	"github.com/siglipd/siglipd/internal/testenv"
)

// serveTowers starts a real MLServer serving dir's towers as siglip_vision
// and siglip_text (suffix picks the variant's files).
func serveTowers(t *testing.T, dir, suffix string) *testenv.MLServer {
	t.Helper()
	return testenv.StartMLServer(t, testenv.Towers(dir, suffix))
}

func remoteOptions(addr string) *Remote {
	return &Remote{Server: oip.Options{Target: addr}, VisionModel: "siglip_vision", TextModel: "siglip_text", Timeout: 20 * time.Second}
}

// TestRemoteParity: the remote backend (towers on a real MLServer over
// gRPC) gives the local backend's probabilities, for every batch size up
// to 8 and for the float16 variant, whose tensors travel as FP16.
func TestRemoteParity(t *testing.T) {
	testenv.Integration(t)
	dir := fixture(t, "tiny", "")
	for _, tc := range []struct {
		name, suffix string
	}{
		{"fp32", ""},
		{"fp16", "_fp16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveTowers(t, dir, tc.suffix)
			local := open(t, dir, func(o *Options) { o.Suffix = tc.suffix })
			remote := open(t, dir, func(o *Options) { o.Suffix = tc.suffix; o.Remote = remoteOptions(srv.Addr()) })
			if info := remote.Info(); info.Backend != "remote" || info.EmbedDim != local.Info().EmbedDim {
				t.Fatalf("remote Info %+v, local %+v", info, local.Info())
			}
			labels := []Label{{"car", []string{"a car", "a parked car"}}, {"person", []string{"a person"}}, {"open", []string{"garage door open"}}}
			ls, err := local.EmbedLabels(labels)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := remote.EmbedLabels(labels)
			if err != nil {
				t.Fatal(err)
			}
			var imgs []Image
			for i, s := range [][2]int{{64, 64}, {97, 131}, {640, 360}, {300, 200}, {37, 500}, {224, 224}, {100, 100}, {1280, 720}} {
				imgs = append(imgs, imageproc.FromImage(scene(s[0], s[1], uint64(i))))
			}
			var worst float64
			for _, n := range []int{1, 4, 8} {
				lp, err := local.Classify(imgs[:n], repeat(ls, n))
				if err != nil {
					t.Fatal(err)
				}
				rp, err := remote.Classify(imgs[:n], repeat(rs, n))
				if err != nil {
					t.Fatal(err)
				}
				for i := range lp {
					for j := range lp[i] {
						d := math.Abs(float64(lp[i][j] - rp[i][j]))
						worst = math.Max(worst, d)
						if d > 1e-5 {
							t.Errorf("batch %d, image %d, label %d: remote %.7f, local %.7f", n, i, j, rp[i][j], lp[i][j])
						}
					}
				}
			}
			t.Logf("max |Δp| remote vs local = %.3g", worst)
			if st := remote.Server(); !st.Up || st.Failures != 0 || st.Server != srv.Addr() {
				t.Errorf("server state %+v, want up with no failures", st)
			}
		})
	}
}

// TestRemoteRefusesWrongModel: a server that serves something else under
// the configured names is refused at start, naming the model and what is
// wrong; a server that is not there is "unavailable", which the daemon
// waits out.
func TestRemoteRefusesWrongModel(t *testing.T) {
	testenv.Integration(t)
	tiny, colour := fixture(t, "tiny", ""), fixture(t, "colour", "")
	srv := testenv.StartMLServer(t, map[string]string{
		"siglip_vision": filepath.Join(tiny, "onnx", "vision_model.onnx"),
		"siglip_text":   filepath.Join(tiny, "onnx", "text_model.onnx"),
		"colour_vision": filepath.Join(colour, "onnx", "vision_model.onnx"),
	})
	for _, tc := range []struct {
		name        string
		vision      string
		text        string
		want        string
		unavailable bool
	}{
		{"text model as vision", "siglip_text", "siglip_text", `vision tower model "siglip_text" on ` + srv.Addr() + `: has no pixel_values input (inputs: input_ids)`, false},
		{"vision model as text", "siglip_vision", "siglip_vision", `text tower model "siglip_vision" on ` + srv.Addr() + `: has no input_ids input (inputs: pixel_values)`, false},
		{"other embedding size", "colour_vision", "siglip_text", "gives", false},
		{"unknown model", "nope", "siglip_text", `vision tower model "nope" on ` + srv.Addr() + ": inference server " + srv.Addr() + ": ModelMetadata", false},
		{"no server", "siglip_vision", "siglip_text", "Unavailable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := remoteOptions(srv.Addr())
			r.VisionModel, r.TextModel, r.Timeout = tc.vision, tc.text, 5*time.Second
			if tc.unavailable {
				r.Server.Target = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
			}
			m, err := Open(Options{Dir: tiny, Remote: r})
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if ServerUnavailable(err) != tc.unavailable {
				t.Errorf("ServerUnavailable(%v) = %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
		})
	}
}

// TestRemoteTimeout: a server slower than the timeout fails the call when
// the timeout ends, as unavailable (the daemon's "down"), rather than
// holding the batcher.
func TestRemoteTimeout(t *testing.T) {
	testenv.Integration(t)
	dir := fixture(t, "tiny", "")
	srv := testenv.StartMLServerWith(t, testenv.Towers(dir, ""), testenv.MLServerOptions{Threads: 1, Slow: []string{"siglip_vision"}}) // 2 s per request
	m := open(t, dir, func(o *Options) { o.Remote = remoteOptions(srv.Addr()); o.Remote.Timeout = 500 * time.Millisecond })
	start := time.Now()
	_, err := m.EmbedImages([]Image{imageproc.FromImage(scene(64, 64, 1))})
	took := time.Since(start)
	if !ServerUnavailable(err) || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("a call to a server 2 s late with a 500ms timeout: %v, want DeadlineExceeded", err)
	}
	if took < 500*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("the call took %s, want about the 500ms timeout", took)
	}
	if st := m.Server(); st.Up {
		t.Errorf("state %+v, want down", st)
	}
}

// TestRemoteServerDown: a killed server fails calls at once as
// unavailable and shows as down; once it is back, calls succeed again
// on the same Model, without reopening it.
func TestRemoteServerDown(t *testing.T) {
	testenv.Integration(t)
	dir := fixture(t, "tiny", "")
	srv := serveTowers(t, dir, "")
	m := open(t, dir, func(o *Options) { o.Remote = remoteOptions(srv.Addr()); o.Remote.Timeout = 3 * time.Second })
	img := []Image{imageproc.FromImage(scene(64, 64, 1))}
	before, err := m.EmbedImages(img)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	start := time.Now()
	_, err = m.EmbedImages(img)
	if !ServerUnavailable(err) {
		t.Fatalf("with the server killed: %v, want an unavailable error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a call to a dead server took %s", took)
	}
	if st := m.Server(); st.Up || st.Failures == 0 || st.LastError == "" {
		t.Errorf("state %+v, want down with the error", st)
	}
	srv.Start()
	var after [][]float32
	testenv.WaitFor(t, 30*time.Second, func() bool {
		after, err = m.EmbedImages(img)
		return err == nil
	}, "calls succeed again after the server restarted")
	for i := range before[0] {
		if before[0][i] != after[0][i] {
			t.Fatalf("embedding changed across the restart at %d: %v vs %v", i, before[0][i], after[0][i])
		}
	}
	if st := m.Server(); !st.Up {
		t.Errorf("state %+v, want up", st)
	}
}
