package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestSystemdUnit: configs/siglipd.service passes `systemd-analyze verify`
// (with ExecStart on the binary under test: verify checks it exists).
func TestSystemdUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	unit, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "configs", "siglipd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/siglipd ") {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/siglipd, which make install rewrites")
	}
	path := filepath.Join(t.TempDir(), "siglipd.service")
	os.WriteFile(path, []byte(strings.Replace(string(unit), "/usr/local/bin/siglipd", siglipdBin, 1)), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
