package daemon

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/testenv"
)

// frameWords are the six words a frame is counted under, everywhere.
var frameWords = []string{"decoded", "sampled", "dropped", "skipped", "failed", "scored"}

// oneCamera is a statusSource with one camera, so that every per-camera
// metric is exposed.
type oneCamera struct{ noStatus }

func (oneCamera) Cameras() []capture.Status { return []capture.Status{{Name: "door"}} }

// TestFrameWords fails when a metric, a status field, the live page or a
// log message uses another word for what became of a frame.
func TestFrameWords(t *testing.T) {
	t.Run("metrics", func(t *testing.T) {
		m := newMetrics(oneCamera{})
		families, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		countRe := regexp.MustCompile(`^siglipd_frames_([a-z]+)_total$`)
		notCounts := []string{"siglipd_frame_wait_seconds", "siglipd_frame_to_event_seconds", "siglipd_camera_last_frame_timestamp_seconds",
			"siglipd_camera_keyframe_rate"}
		var got []string
		for _, f := range families {
			name := f.GetName()
			if !strings.Contains(name, "frame") || slices.Contains(notCounts, name) {
				continue
			}
			mm := countRe.FindStringSubmatch(name)
			if mm == nil || !slices.Contains(frameWords, mm[1]) {
				t.Errorf("metric %s: a frame count must be siglipd_frames_<word>_total with one of %v", name, frameWords)
				continue
			}
			got = append(got, mm[1])
		}
		if !sameWords(got, frameWords) {
			t.Errorf("frame count metrics for %v, want one for each of %v", got, frameWords)
		}
	})

	t.Run("status", func(t *testing.T) {
		var got []string
		ct := reflect.TypeOf(httpapi.Camera{})
		for i := range ct.NumField() {
			tag, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
			if word, ok := strings.CutPrefix(tag, "frames_"); ok {
				got = append(got, word)
			}
		}
		if !sameWords(got, frameWords) {
			t.Errorf("/api/status camera fields frames_%v, want frames_ and one of each of %v", got, frameWords)
		}
	})

	t.Run("page", func(t *testing.T) {
		page, err := os.ReadFile("httpapi/web/index.html")
		if err != nil {
			t.Fatal(err)
		}
		shown := map[string]bool{}
		for _, m := range regexp.MustCompile(`frames_([a-z]+)`).FindAllStringSubmatch(string(page), -1) {
			if !slices.Contains(frameWords, m[1]) {
				t.Errorf("the live page reads frames_%s, not a frame word", m[1])
			}
			shown[m[1]] = true
		}
		for _, w := range []string{"dropped", "skipped", "failed", "scored"} { // every sampled frame's end
			if !shown[w] {
				t.Errorf("the live page does not show frames %s", w)
			}
		}
	})

	t.Run("logs and help", func(t *testing.T) {
		for _, p := range frameWordProblems(t, testenv.RepoRoot(t)) {
			t.Error(p)
		}
	})
}

// Words that say what became of frames but are not the six; and the word
// of the change gate, which is only right next to what the gate does.
var (
	otherFrameWordRe = regexp.MustCompile(`(?i)\b(discarded|lost|ignored|thrown away|processed|analy[sz]ed|classified|evaluated|rejected|omitted|missed|inferred)\b`)
	frameRe          = regexp.MustCompile(`(?i)\bframes?\b`)
	gateRe           = regexp.MustCompile(`(?i)unchanged|looked like|looks like|change gate`)
	failRe           = regexp.MustCompile(`(?i)fail|error`)
)

// frameWordProblems reads every string constant in the repository's Go
// code (not tests): log messages, metric help, errors. One that speaks of
// frames must not use another word for their fate, "skipped" must be the
// change gate's, and a failure's frames are failed, not dropped.
func frameWordProblems(t *testing.T, root string) []string {
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (strings.HasPrefix(e.Name(), ".") || e.Name() == "node_modules" || e.Name() == "testdata") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !frameRe.MatchString(s) {
				return true
			}
			at := fset.Position(lit.Pos())
			rel, _ := filepath.Rel(root, at.Filename)
			if w := otherFrameWordRe.FindString(s); w != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: %q says frames are %q: use one of %v", rel, at.Line, s, w, frameWords))
			}
			if strings.Contains(strings.ToLower(s), "skipped") && !gateRe.MatchString(s) {
				problems = append(problems, fmt.Sprintf("%s:%d: %q: \"skipped\" is the change gate's word (a frame that looked unchanged)", rel, at.Line, s))
			}
			if strings.Contains(strings.ToLower(s), "dropped") && failRe.MatchString(s) {
				problems = append(problems, fmt.Sprintf("%s:%d: %q: a frame the model could not score is \"failed\", not dropped", rel, at.Line, s))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

func sameWords(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// flakyModel is the fake model, slowed and failing every fourth batch:
// four, not three, since the batcher serves three cameras in turns and
// every third batch would always be the same camera's.
type flakyModel struct {
	*fakeModel
	delay time.Duration
	calls atomic.Int64
}

func (m *flakyModel) EmbedImages(images []infer.Image) ([][]float32, error) {
	time.Sleep(m.delay)
	if m.calls.Add(1)%4 == 0 {
		return nil, errors.New("the inference server went away")
	}
	return m.fakeModel.EmbedImages(images)
}

// TestFrameAccounting: every sampled frame is counted under exactly one of
// dropped, skipped, failed and scored. Three cameras at 10 fps against a
// slow model one frame a batch (so frames are dropped, and left in the hand-off at the stop), one of them still
// (so frames are skipped), a model that fails every fourth batch (so frames
// fail), and a stop with frames in hand: once Run has returned, for every
// camera, sampled = dropped + skipped + failed + scored.
func TestFrameAccounting(t *testing.T) {
	testenv.Integration(t)
	moving := testenv.VideoFile(t, testenv.VideoOptions{Duration: 4 * time.Second})
	stillVideo := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 4 * time.Second, Name: "still.mp4"})
	config := fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
inference: {batch_size: 1}
label_defaults: {threshold: 0.9}
cameras:
  - {name: a, url: %s, loop: true, fps: 10, labels: [{name: red}]}
  - {name: b, url: %s, loop: true, fps: 10, labels: [{name: red}]}
  - {name: still, url: %s, loop: true, fps: 10, labels: [{name: red}]}
`, t.TempDir(), filepath.Join(t.TempDir(), "no-model"), moving, moving, stillVideo)
	var d *daemon
	r := startDaemon(t, config, func(h *hooks) {
		h.classifier = &flakyModel{fakeModel: &fakeModel{}, delay: 150 * time.Millisecond}
		h.started = func(started *daemon) { d = started }
	})
	var a, still httpapi.Camera
	if !testenv.Eventually(30*time.Second, func() bool {
		a, still = r.camera("a"), r.camera("still")
		return a.FramesDropped > 5 && a.FramesFailed > 0 && a.FramesScored > 5 && still.FramesSkipped > 5
	}) {
		t.Fatalf("no frames of every kind within 30 s: a %+v; still %+v", a, still)
	}
	r.stop()
	for _, st := range d.Cameras() {
		c := st.Name
		dropped, skipped, failed, scored := d.FramesDropped(c), d.FramesSkipped(c), d.FramesFailed(c), d.FramesScored(c)
		t.Logf("%s: sampled %d = dropped %d + skipped %d + failed %d + scored %d", c, st.FramesSampled, dropped, skipped, failed, scored)
		if sum := dropped + skipped + failed + scored; sum != st.FramesSampled {
			t.Errorf("camera %s: sampled %d, but dropped + skipped + failed + scored = %d", c, st.FramesSampled, sum)
		}
	}
}
