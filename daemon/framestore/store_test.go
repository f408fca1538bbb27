package framestore

import (
	"bytes"
	"cmp"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/internal/testenv"
)

// jpegBytes is a Picture whose "JPEG" is fixed bytes; the store treats
// thumbnails as opaque.
type jpegBytes []byte

func (j jpegBytes) JPEG() ([]byte, error) { return j, nil }
func (j jpegBytes) Close()                {}

// unit returns a random unit vector near centre (noise 0: centre itself).
func unit(rng *rand.Rand, centre []float32, noise float64) []float32 {
	x := make([]float32, len(centre))
	perturb(x, rng, centre, noise)
	return x
}

// perturb writes centre plus Gaussian noise of that deviation per value,
// normalized, into x: a camera's frame of a scene.
func perturb(x []float32, rng *rand.Rand, centre []float32, noise float64) {
	var n float64
	for i := range x {
		x[i] = centre[i] + float32(noise*rng.NormFloat64())
		n += float64(x[i]) * float64(x[i])
	}
	for i := range x {
		x[i] /= float32(math.Sqrt(n))
	}
}

func randomUnit(rng *rand.Rand, dim int) []float32 {
	c := make([]float32, dim)
	for i := range c {
		c[i] = float32(rng.NormFloat64())
	}
	return unit(rng, c, 0)
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t    *testing.T
	dir  string
	now  time.Time
	opts Options
	log  *testenv.LogRecorder
}

func newFixture(t *testing.T, dim int) *fixture {
	log, rec := testenv.NewLogRecorder(t)
	f := &fixture{t: t, dir: filepath.Join(t.TempDir(), "frames"), now: t0.Add(time.Hour), log: rec}
	f.opts = Options{Keep: 7 * 24 * time.Hour, MaxSize: 1 << 30, ModelKey: "test-model", Dim: dim, Log: log}
	return f
}

func (f *fixture) open() *Store {
	f.t.Helper()
	o := f.opts
	o.Dir = f.dir
	o.Now = func() time.Time { return f.now }
	s, err := Open(o)
	if err != nil {
		f.t.Fatal(err)
	}
	s.WaitLoaded()
	return s
}

// add stores items and waits until the writer has written them.
func add(t *testing.T, s *Store, items ...Item) {
	t.Helper()
	before := s.Stats().Stored + s.Stats().Failed
	for _, it := range items {
		for !s.Add(it) { // the queue is full: the writer is busy
			testenv.WaitFor(t, 10*time.Second, func() bool { return len(s.queue) < queueLen }, "room in the store's queue")
		}
	}
	want := before + uint64(len(items))
	testenv.WaitFor(t, 10*time.Second, func() bool {
		st := s.Stats()
		return st.Stored+st.Failed >= want
	}, "the writer to write every frame")
}

func errorLines(rec *testenv.LogRecorder) []testenv.LogRecord {
	return rec.Records(func(r testenv.LogRecord) bool { return r.Level >= slog.LevelError })
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, 24)
	rng := rand.New(rand.NewPCG(1, 2))
	s := f.open()
	var items []Item
	for i := range 40 {
		items = append(items, Item{
			Camera: []string{"porch", "garden"}[i%2], Time: t0.Add(time.Duration(i) * time.Second), Reason: Reason(i % 3),
			Crop: image.Rect(i, 2, 100+i, 80), Width: 640, Height: 480, Embedding: randomUnit(rng, 24),
			Picture: jpegBytes(fmt.Sprintf("thumb-%d", i)),
		})
	}
	add(t, s, items...)
	top, err := s.Top(Query{Vector: items[7].Embedding}, 1)
	if err != nil || len(top) != 1 {
		t.Fatalf("Top: %v %v", top, err)
	}
	id := top[0].ID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = f.open()
	defer s.Close()
	if st := s.Stats(); st.Frames != 40 || st.Searchable != 40 || !st.Oldest.Equal(t0) {
		t.Fatalf("after reopen: %+v", st)
	}
	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	want := items[7]
	if got.Camera != want.Camera || !got.Time.Equal(want.Time) || got.Reason != want.Reason || got.Crop != want.Crop || got.Width != 640 || got.Height != 480 {
		t.Errorf("Get = %+v, want %+v", got.Frame, want)
	}
	for i, v := range got.Embedding {
		if v != want.Embedding[i] {
			t.Fatalf("embedding[%d] = %v, stored %v", i, v, want.Embedding[i])
		}
	}
	jpg, err := s.Thumbnail(id)
	if err != nil || string(jpg) != "thumb-7" {
		t.Errorf("Thumbnail = %q, %v", jpg, err)
	}
	if _, err := s.Get(id + 1); err != ErrNotFound {
		t.Errorf("Get(not a record) = %v, want ErrNotFound", err)
	}
}

// TestMoments: a camera's consecutive frames above the floor are one
// moment; a frame below it, or a gap longer than Gap, ends it; the best
// moment comes first; another camera's frames do not join.
func TestMoments(t *testing.T) {
	const dim = 32
	rng := rand.New(rand.NewPCG(3, 4))
	yellow, grey := randomUnit(rng, dim), randomUnit(rng, dim)
	// The timeline per camera: y = a frame near yellow, g = near grey, _ =
	// a gap of a minute with no frame.
	tests := []struct {
		name   string
		garden string
		porch  string
		camera string
		want   []string // camera:first-last frame index
	}{
		{"one run", "ggyyyygg", "gggggggg", "", []string{"garden:2-5"}},
		{"two runs", "yygggyyy", "gggggggg", "", []string{"garden:0-1", "garden:5-7"}},
		{"gap splits", "yy_yy", "ggggg", "", []string{"garden:0-1", "garden:3-4"}},
		{"both cameras", "gyyg", "yygg", "", []string{"garden:1-2", "porch:0-1"}},
		{"camera filter", "gyyg", "yygg", "porch", []string{"porch:0-1"}},
		{"none", "gggg", "gggg", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, dim)
			s := f.open()
			defer s.Close()
			// The two cameras' frames interleave in time, as they do live.
			type at struct{ camera, index string }
			var items []Item
			var labels []at
			for cam, line := range map[string]string{"garden": tt.garden, "porch": tt.porch} {
				clock := t0
				idx := 0
				for _, c := range line {
					clock = clock.Add(time.Second)
					if c == '_' {
						clock = clock.Add(time.Minute)
						idx++
						continue
					}
					centre := grey
					if c == 'y' {
						centre = yellow
					}
					items = append(items, Item{Camera: cam, Time: clock, Embedding: unit(rng, centre, 0.02)})
					labels = append(labels, at{cam, fmt.Sprint(idx)})
					idx++
				}
			}
			order := make([]int, len(items))
			for i := range order {
				order[i] = i
			}
			slices.SortFunc(order, func(a, b int) int { return items[a].Time.Compare(items[b].Time) })
			sorted := make([]Item, len(items))
			index := map[string]string{} // camera+time → index
			for i, o := range order {
				sorted[i] = items[o]
				index[items[o].Camera+items[o].Time.String()] = labels[o].index
			}
			add(t, s, sorted...)
			res, err := s.Search(Query{Vector: yellow, Floor: 0.9, Limit: 10, Gap: 30 * time.Second, Camera: tt.camera})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range res.Moments {
				got = append(got, fmt.Sprintf("%s:%s-%s", m.Camera, index[m.Camera+m.Start.String()], index[m.Camera+m.End.String()]))
				if m.Best.Score < 0.9 || m.Best.Time.Before(m.Start) || m.Best.Time.After(m.End) {
					t.Errorf("moment %v: best frame %+v", got[len(got)-1], m.Best)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("moments = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTopMatchesExactScan: the int8 scan plus the exact rerank finds the
// same top 20, in the same order, as a float32 scan of the embeddings as
// they were given, on frames that come in near-identical runs (as a
// camera's do).
func TestTopMatchesExactScan(t *testing.T) {
	const dim, n = 768, 12000
	rng := rand.New(rand.NewPCG(5, 6))
	f := newFixture(t, dim)
	s := f.open()
	defer s.Close()
	var centres [][]float32
	for range n / 100 {
		centres = append(centres, randomUnit(rng, dim))
	}
	// The first 4,000 frames are a still camera's: one scene, noise only
	// (cos ≈ 0.9999 between them), more near-ties than any fixed number
	// of candidates holds.
	items := make([]Item, n)
	for i := range items {
		centre, noise := centres[i/100], 0.003
		if i < 4000 {
			centre, noise = centres[0], 0.0005
		}
		items[i] = Item{Camera: "cam", Time: t0.Add(time.Duration(i) * time.Second), Embedding: unit(rng, centre, noise)}
	}
	add(t, s, items...)
	for q := range 12 {
		query := unit(rng, centres[rng.IntN(len(centres))], 0.05)
		switch {
		case q%3 == 1:
			query = randomUnit(rng, dim)
		case q%3 == 2:
			query = unit(rng, centres[0], 0.05) // the still scene
		}
		top, err := s.Top(Query{Vector: query}, 20)
		if err != nil {
			t.Fatal(err)
		}
		exact := make([]int, n)
		cos := make([]float64, n)
		for i := range exact {
			exact[i] = i
			for j, v := range items[i].Embedding {
				cos[i] += float64(v) * float64(query[j])
			}
		}
		slices.SortFunc(exact, func(a, b int) int { return cmp.Compare(cos[b], cos[a]) })
		for k, h := range top {
			want := exact[k]
			if !h.Time.Equal(items[want].Time) {
				t.Fatalf("query %d: rank %d is frame at %v (cos %.6f), exact scan has frame %d (cos %.6f)", q, k, h.Time, h.Score, want, cos[want])
			}
			if d := math.Abs(h.Score - cos[want]); d > 1e-12 {
				t.Errorf("query %d rank %d: cos %.6f, exact %.6f", q, k, h.Score, cos[want])
			}
		}
	}
}

func TestRetention(t *testing.T) {
	const dim = 64
	rng := rand.New(rand.NewPCG(7, 8))
	thumb := jpegBytes(bytes.Repeat([]byte{0xff}, 4000))
	t.Run("size", func(t *testing.T) {
		f := newFixture(t, dim)
		f.opts.MaxSize = 2 << 20
		s := f.open()
		defer s.Close()
		for i := range 3000 { // about 12 MB, checked every 20 frames
			s.queue <- Item{Camera: "cam", Time: t0.Add(time.Duration(i) * time.Second), Embedding: randomUnit(rng, dim), Picture: thumb}
			if i%20 != 19 {
				continue
			}
			testenv.WaitFor(t, 10*time.Second, func() bool { return s.Stats().Stored == uint64(i+1) }, "the writer to write %d frames", i+1)
			if du := folderSize(t, f.dir); float64(du) > float64(f.opts.MaxSize)*(1+1.0/segmentShare)+float64(minSegment) {
				t.Fatalf("after %d frames the folder holds %d bytes, more than max_size %d + one segment", i+1, du, f.opts.MaxSize)
			}
		}
		st := s.Stats()
		if st.Bytes < f.opts.MaxSize/2 || st.Frames == 3000 {
			t.Errorf("stats %+v: retention deleted too much or nothing", st)
		}
		// The oldest went first: the newest frame is still there.
		top, _ := s.Top(Query{Vector: randomUnit(rng, dim)}, st.Frames)
		newest := slices.MaxFunc(top, func(a, b Hit) int { return a.Time.Compare(b.Time) })
		if !newest.Time.Equal(t0.Add(2999 * time.Second)) {
			t.Errorf("newest frame kept is at %v", newest.Time)
		}
	})
	t.Run("age", func(t *testing.T) {
		f := newFixture(t, dim)
		f.opts.Keep = time.Hour
		s := f.open()
		for i := range 20 {
			add(t, s, Item{Camera: "cam", Time: f.now.Add(time.Duration(i) * time.Second), Embedding: randomUnit(rng, dim)})
		}
		s.Close()
		f.now = f.now.Add(2 * time.Hour) // the frames are past keep
		s = f.open()
		defer s.Close()
		add(t, s, Item{Camera: "cam", Time: f.now, Embedding: randomUnit(rng, dim)}) // opens a segment
		s.retain()
		if st := s.Stats(); st.Frames != 1 {
			t.Errorf("after keep passed: %d frames, want the 1 new one", st.Frames)
		}
	})
}

func folderSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestDamage: what a crash or a bad disk leaves is handled at Open.
func TestDamage(t *testing.T) {
	const dim = 16
	tests := []struct {
		name       string
		damage     func(t *testing.T, dir string)
		wantFrames int
		wantErrors int // error lines logged
	}{
		{"torn last record", func(t *testing.T, dir string) {
			p := embPath(dir, 1)
			b, _ := os.ReadFile(p)
			n := len(appendRecord(nil, &record{camera: "cam", embedding: make([]byte, 2*dim)}))
			os.WriteFile(p, append(b, appendRecord(nil, &record{camera: "cam", embedding: make([]byte, 2*dim)})[:n-5]...), 0o600)
		}, 10, 0},
		{"thumbnail not written", func(t *testing.T, dir string) {
			os.Truncate(jpgPath(dir, 1), 9*4+2)
		}, 9, 0},
		{"checksum", func(t *testing.T, dir string) {
			p := embPath(dir, 1)
			b, _ := os.ReadFile(p)
			b[len(b)-3] ^= 0x40
			os.WriteFile(p, b, 0o600)
		}, 0, 1},
		{"not a segment", func(t *testing.T, dir string) {
			os.WriteFile(embPath(dir, 1), []byte("hello, this is not a segment"), 0o600)
		}, 0, 1},
		{"folder is a file", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.WriteFile(dir, []byte("x"), 0o600)
		}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			f := newFixture(t, dim)
			s := f.open()
			for i := range 10 {
				add(t, s, Item{Camera: "cam", Time: t0.Add(time.Duration(i) * time.Second), Embedding: randomUnit(rng, dim), Picture: jpegBytes("abcd")})
			}
			s.Close()
			tt.damage(t, f.dir)
			s = f.open()
			if st := s.Stats(); st.Frames != tt.wantFrames {
				t.Errorf("frames after reopen: %d, want %d", st.Frames, tt.wantFrames)
			}
			if errs := errorLines(f.log); len(errs) != tt.wantErrors {
				t.Errorf("error lines: %v, want %d", errs, tt.wantErrors)
			}
			// The store works on: a new frame is stored and found.
			e := randomUnit(rng, dim)
			add(t, s, Item{Camera: "cam", Time: t0.Add(time.Minute), Embedding: e, Picture: jpegBytes("new")})
			top, err := s.Top(Query{Vector: e}, 1)
			if err != nil || len(top) != 1 || !top[0].Time.Equal(t0.Add(time.Minute)) {
				t.Fatalf("after damage, the new frame is not found: %v %v", top, err)
			}
			s.Close()
			// And a second open finds nothing more to repair.
			before := len(errorLines(f.log))
			s = f.open()
			defer s.Close()
			if st := s.Stats(); st.Frames != tt.wantFrames+1 {
				t.Errorf("second reopen: %d frames, want %d", st.Frames, tt.wantFrames+1)
			}
			if errs := errorLines(f.log)[before:]; len(errs) != 0 {
				t.Errorf("second reopen logged errors: %v", errs)
			}
		})
	}
}

// TestOtherModel: frames another model embedded are kept, counted, and not
// searched.
func TestOtherModel(t *testing.T) {
	const dim = 16
	rng := rand.New(rand.NewPCG(11, 12))
	f := newFixture(t, dim)
	s := f.open()
	add(t, s, Item{Camera: "cam", Time: t0, Embedding: randomUnit(rng, dim)})
	s.Close()
	f.opts.ModelKey = "another-model"
	s = f.open()
	defer s.Close()
	res, err := s.Search(Query{Vector: randomUnit(rng, dim), Floor: -1, Limit: 10})
	if err != nil || res.Searched != 0 || res.Other != 1 || len(res.Moments) != 0 {
		t.Errorf("Search = %+v, %v; want the other model's frame counted, not searched", res, err)
	}
}

func TestDeleteAll(t *testing.T) {
	const dim = 16
	rng := rand.New(rand.NewPCG(13, 14))
	f := newFixture(t, dim)
	s := f.open()
	defer s.Close()
	for i := range 5 {
		add(t, s, Item{Camera: "cam", Time: t0.Add(time.Duration(i) * time.Second), Embedding: randomUnit(rng, dim), Picture: jpegBytes("x")})
	}
	if err := s.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Frames != 0 || st.Bytes != 0 {
		t.Errorf("after DeleteAll: %+v", st)
	}
	entries, _ := os.ReadDir(f.dir)
	if len(entries) != 0 {
		t.Errorf("after DeleteAll the folder holds %v", entries)
	}
	add(t, s, Item{Camera: "cam", Time: t0.Add(time.Minute), Embedding: randomUnit(rng, dim)})
	if st := s.Stats(); st.Frames != 1 {
		t.Errorf("a frame after DeleteAll: %+v", st)
	}
}

// TestFullDisk: on a full disk the store drops frames with one warning,
// reports the file as failing, and stores again once there is room.
func TestFullDisk(t *testing.T) {
	disk := testenv.SmallDisk(t, 4<<20)
	const dim = 64
	rng := rand.New(rand.NewPCG(15, 16))
	log, rec := testenv.NewLogRecorder(t)
	files := kit.NewStateFiles(log)
	s, err := Open(Options{Dir: filepath.Join(disk.Dir, "frames"), Keep: time.Hour, MaxSize: 1 << 30, ModelKey: "m", Dim: dim,
		File: files.File("frames", "frames are not stored"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WaitLoaded()
	thumb := jpegBytes(bytes.Repeat([]byte{1}, 2000))
	add(t, s, Item{Camera: "cam", Time: t0, Embedding: randomUnit(rng, dim), Picture: thumb})
	disk.Fill()
	for i := range 50 {
		add(t, s, Item{Camera: "cam", Time: t0.Add(time.Duration(i+1) * time.Second), Embedding: randomUnit(rng, dim), Picture: thumb})
	}
	st := s.Stats()
	if st.Failed == 0 || files.Status()[0].Error == "" {
		t.Fatalf("on a full disk: %+v, %+v", st, files.Status())
	}
	warnings := rec.Records(func(r testenv.LogRecord) bool { return r.Level >= slog.LevelWarn })
	if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "disk full") {
		t.Errorf("warnings on a full disk: %v, want one naming the cause", warnings)
	}
	disk.Free()
	add(t, s, Item{Camera: "cam", Time: t0.Add(time.Hour), Embedding: randomUnit(rng, dim), Picture: thumb})
	if files.Status()[0].Error != "" || s.Stats().Frames != st.Frames+1 {
		t.Errorf("after room was made: %+v, %+v", s.Stats(), files.Status())
	}
}

// TestLargeEmbeddings: so400m's 1152 values make records larger than the
// reader's first buffer; they read back whole after a reopen.
func TestLargeEmbeddings(t *testing.T) {
	const dim = 1152
	rng := rand.New(rand.NewPCG(17, 18))
	f := newFixture(t, dim)
	s := f.open()
	e := randomUnit(rng, dim)
	add(t, s, Item{Camera: "cam", Time: t0, Embedding: e}, Item{Camera: "cam", Time: t0.Add(time.Second), Embedding: randomUnit(rng, dim)})
	s.Close()
	s = f.open()
	defer s.Close()
	top, err := s.Top(Query{Vector: e}, 1)
	if err != nil || len(top) != 1 || !top[0].Time.Equal(t0) || s.Stats().Frames != 2 {
		t.Fatalf("after reopen: %v %v %+v", top, err, s.Stats())
	}
}
