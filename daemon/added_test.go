package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/configs"
)

// TestAddedNotes: --check names each label added on the page, and says
// when one does not run (the file has it, or its camera is gone).
func TestAddedNotes(t *testing.T) {
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, addedLabelsFile), []byte(`[
  {"camera": "garden", "name": "yellow", "prompts": ["yellow"], "threshold": 0.6, "min_frames": 1, "off_frames": 1, "off_delay": "0s", "cooldown": "10s"},
  {"camera": "garden", "name": "blue", "prompts": ["blue"], "threshold": 0.5, "min_frames": 1, "off_frames": 1, "off_delay": "0s", "cooldown": "0s"},
  {"camera": "attic", "name": "bat", "prompts": ["a bat"], "threshold": 0.5, "min_frames": 1, "off_frames": 1, "off_delay": "0s", "cooldown": "0s"}
]`), 0o600)
	cfg := &configs.Config{StateDir: state, Cameras: []configs.Camera{{Name: "garden", Labels: []configs.Label{{Name: "blue"}}}}}
	notes := addedNotes(cfg)
	want := []string{`label "yellow" of camera "garden" was added on the page`, `"blue" of camera "garden" was added on the page`, `the config file has it too`,
		`camera "attic", which the config file no longer has`}
	all := strings.Join(notes, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("--check notes lack %q:\n%s", w, all)
		}
	}
	run := withAdded(cfg, mustReadAdded(t, state))
	if n := len(run.Cameras[0].Labels); n != 2 || run.Cameras[0].Labels[1].Source != configs.SourcePage || run.Cameras[0].Labels[1].Cooldown.D().Seconds() != 10 {
		t.Errorf("running labels: %+v", run.Cameras[0].Labels)
	}
	if len(cfg.Cameras[0].Labels) != 1 {
		t.Error("withAdded changed its input")
	}
	os.WriteFile(filepath.Join(state, addedLabelsFile), []byte(`{not json`), 0o600)
	if notes := addedNotes(cfg); len(notes) != 1 || !strings.Contains(notes[0], "move the file aside") {
		t.Errorf("unreadable labels.json: %v", notes)
	}
}

func mustReadAdded(t *testing.T, dir string) []AddedLabel {
	a, err := readAddedLabels(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
