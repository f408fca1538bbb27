package kit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i, durable := range []bool{false, true} {
		want := []byte(strings.Repeat("x", i+1))
		if err := WriteFile(path, want, 0o600, durable); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Fatalf("read back %q, %v; want %q", got, err, want)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
	}

	// A failed write leaves the old file and no temporary file behind.
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	err := WriteFile(path, []byte("new"), 0o600, true)
	if os.Geteuid() == 0 {
		// root writes into a read-only folder; nothing to check here (the
		// full-disk tests cover failures that root meets too).
		return
	}
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); string(got) != "xx" {
		t.Errorf("old contents %q, want xx", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only state.json", len(entries))
	}
}
