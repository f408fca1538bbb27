package infer

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestCheckpointFolder: a folder in Google's layout (safetensors, sparse
// config, spiece.model) as model.path. --check describes it from its files
// and writes nothing; Open builds its towers once, next to it, and after
// that --check describes the built towers; an ONNX variant is refused.
func TestCheckpointFolder(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.GoogleCheckpoint(t, t.TempDir(), "small")
	built := convert.OutputDir(dir)

	before, err := Check(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if before.Family != "SigLIP" || before.PatchSize != 16 || before.ImageWidth != 224 || before.Parameters == 0 {
		t.Errorf("Check before the build: %+v", before)
	}
	if _, err := os.Stat(built); err == nil {
		t.Fatalf("Check wrote %s", built)
	}

	logs := &testenv.SyncBuffer{}
	withLog := func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) }
	m := open(t, dir, withLog)
	if info := m.Info(); info.Dir != built {
		t.Errorf("model folder %s, want the built one %s", info.Dir, built)
	}
	if !strings.Contains(logs.String(), "built ONNX towers from the checkpoint") {
		t.Errorf("no build logged:\n%s", logs.String())
	}
	after, err := Check(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The towers hold the checkpoint's weights and a few shape constants.
	if after.Family != before.Family || after.PatchSize != 16 || after.Parameters < before.Parameters || after.Parameters > before.Parameters+1000 {
		t.Errorf("Check after the build: %+v; before: %+v", after, before)
	}
	t.Logf("before the build: %s; after: %s", before, after)

	logs = &testenv.SyncBuffer{}
	open(t, dir, withLog)
	if strings.Contains(logs.String(), "built ONNX towers") {
		t.Errorf("the second Open built again:\n%s", logs.String())
	}

	_, err = Open(Options{Dir: dir, Suffix: "_fp16", Library: LibraryChoice{Env: testenv.ORTLib(t)}})
	if err == nil || !strings.Contains(err.Error(), `variant "fp16"`) || !strings.Contains(err.Error(), filepath.Base(dir)) {
		t.Errorf("variant fp16 of a checkpoint: %v", err)
	}
}
