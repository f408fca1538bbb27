package framestore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// writerEnv switches the test binary into the writer child of
// TestKillDuringWrites (see TestMain and writerMain); its value is the
// store's folder.
const writerEnv = "SIGLIPD_FRAMESTORE_WRITER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		os.Exit(writerMain(dir))
	}
	os.Exit(m.Run())
}

// The writer child's frames: frame i is at killT0 + i ms, with an
// embedding and an ≈ 8 KB thumbnail that only i decides, so the parent
// knows what every stored frame must hold.
const (
	killDim   = 768
	killModel = "kill-test"
	killThumb = 8 << 10
)

var killT0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

func killFrame(i int) Item {
	thumb := make([]byte, killThumb)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for j := 0; j+8 <= len(thumb); j += 8 {
		binary.LittleEndian.PutUint64(thumb[j:], r.Uint64())
	}
	return Item{Camera: "cam", Time: killT0.Add(time.Duration(i) * time.Millisecond), Reason: Changed,
		Width: 640, Height: 360, Embedding: randomUnit(r, killDim), Picture: jpegBytes(thumb)}
}

func killOptions(dir string) Options {
	return Options{Dir: dir, MaxSize: 1 << 30, ModelKey: killModel, Dim: killDim}
}

// writerMain is the child: it opens the store in dir and adds frames 0,
// 1, 2, … as fast as the writer takes them (none dropped: a full queue is
// retried), and after every 100 prints how many the writer has stored, one
// line each, until it is killed.
func writerMain(dir string) int {
	s, err := Open(killOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s.WaitLoaded()
	for i := 0; ; i++ {
		it := killFrame(i)
		for !s.Add(it) {
			runtime.Gosched() // the queue is full: let the writer run
		}
		if i%100 == 99 {
			// Unbuffered: the parent sees each count as soon as it is true.
			fmt.Fprintln(os.Stdout, s.Stats().Stored)
		}
	}
}

// TestKillDuringWrites: a SIGKILL while the writer is busy loses at most
// the frames still queued, never a frame it reported written. The store
// opens without an error, holds every frame the child saw stored, in
// order, each readable with its embedding and thumbnail; and a second Open
// finds nothing to repair.
func TestKillDuringWrites(t *testing.T) {
	tests := []struct {
		name   string
		stored int // the child is killed once it has stored this many
	}{
		{"after 2000", 2000},
		{"after 5000", 5000},
		{"after 10000", 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "frames")
			printed := killWriter(t, dir, tt.stored)

			f := newFixture(t, killDim)
			f.dir, f.opts.ModelKey = dir, killModel
			s := f.open()
			st := s.Stats()
			if st.Frames < printed || st.Corrupt != 0 {
				t.Fatalf("after the kill: %+v; the child had printed %d stored", st, printed)
			}
			if warns := f.log.Records(func(r testenv.LogRecord) bool { return r.Level >= slog.LevelWarn }); len(warns) != 0 {
				t.Errorf("Open after the kill logged: %v", warns)
			}
			checkKilledFrames(t, s, st.Frames)
			s.Close()

			sizes := fileSizes(t, dir)
			s = f.open()
			defer s.Close()
			if again := s.Stats(); again.Frames != st.Frames || again.Corrupt != 0 {
				t.Errorf("second Open: %+v, want the %d frames of the first", again, st.Frames)
			}
			if after := fileSizes(t, dir); !maps.Equal(sizes, after) {
				t.Errorf("second Open changed the files: %v, then %v", sizes, after)
			}
			if warns := f.log.Records(func(r testenv.LogRecord) bool { return r.Level >= slog.LevelWarn }); len(warns) != 0 {
				t.Errorf("second Open logged: %v", warns)
			}
			t.Logf("killed after %d printed stored; %d frames on disk", printed, st.Frames)
		})
	}
}

// killWriter runs the writer child on dir, SIGKILLs it once it has printed
// at least n stored, and returns the last count it printed.
func killWriter(t *testing.T, dir string, n int) int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+dir)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	counts := make(chan int)
	go func() {
		defer close(counts)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if c, err := strconv.Atoi(sc.Text()); err == nil {
				counts <- c
			}
		}
	}()
	printed := 0
	deadline := time.After(time.Minute)
	for printed < n {
		select {
		case c, ok := <-counts:
			if !ok {
				cmd.Wait()
				t.Fatalf("the writer child ended after printing %d stored: %v\n%s", printed, cmd.ProcessState, stderr.String())
			}
			printed = c
		case <-deadline:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the writer child printed %d stored in a minute, want %d\n%s", printed, n, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// What it printed before the signal landed counts too.
	for c := range counts {
		printed = c
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the writer child ended by %v, not by the SIGKILL\n%s", cmd.ProcessState, stderr.String())
	}
	return printed
}

// checkKilledFrames: the store holds frames 0 … n-1 of the child, in
// order, each with the embedding, record and thumbnail the child gave it.
func checkKilledFrames(t *testing.T, s *Store, n int) {
	var ids []ID
	k := 0
	err := s.Embeddings("cam", time.Time{}, time.Time{}, func(fr Frame, emb []float32) error {
		want := killFrame(k)
		if !fr.Time.Equal(want.Time) || !slices.Equal(emb, want.Embedding) {
			return fmt.Errorf("stored frame %d is at %v, want frame %d's time %v and embedding", k, fr.Time, k, want.Time)
		}
		ids = append(ids, fr.ID)
		k++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("%d frames read back, Stats says %d", len(ids), n)
	}
	for k, id := range ids {
		want := killFrame(k)
		got, err := s.Get(id)
		if err != nil {
			t.Fatalf("Get(frame %d): %v", k, err)
		}
		if !got.Time.Equal(want.Time) || got.Width != want.Width || got.Reason != want.Reason {
			t.Fatalf("Get(frame %d) = %+v", k, got.Frame)
		}
		jpg, err := s.Thumbnail(id)
		if err != nil {
			t.Fatalf("Thumbnail(frame %d): %v", k, err)
		}
		if wantJPG, _ := want.Picture.JPEG(); !bytes.Equal(jpg, wantJPG) {
			t.Fatalf("Thumbnail(frame %d): %d bytes, not the child's", k, len(jpg))
		}
	}
}

func fileSizes(t *testing.T, dir string) map[string]int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}
