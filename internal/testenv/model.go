package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/siglipd/siglipd/infer/testmodel"
)

var models struct {
	sync.Mutex
	root string
	dirs map[string]string // preset → folder
}

// Model returns the folder of a generated test model (a testmodel preset:
// "colour", "tiny", ...), generating it the first time a test binary asks.
// Tests must not change it.
func Model(t testing.TB, preset string) string {
	t.Helper()
	models.Lock()
	defer models.Unlock()
	if dir, ok := models.dirs[preset]; ok {
		return dir
	}
	if models.root == "" {
		root, err := os.MkdirTemp("", "siglipd-test-models")
		if err != nil {
			t.Fatal(err)
		}
		models.root, models.dirs = root, map[string]string{}
	}
	dir := filepath.Join(models.root, preset)
	if err := testmodel.Generate(testmodel.Options{Preset: preset, OutDir: dir}); err != nil {
		t.Fatalf("generating the %s test model: %v", preset, err)
	}
	models.dirs[preset] = dir
	return dir
}
