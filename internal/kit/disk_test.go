package kit_test

// An external test package: testenv (its SmallDisk) reaches, through the
// test models, packages that import kit.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestWriteFileFullDisk: on a disk that is full, then read-only, a write
// fails naming the cause and leaves the old contents and no temporary file;
// once there is room again it works.
func TestWriteFileFullDisk(t *testing.T) {
	testenv.Integration(t)
	disk := testenv.SmallDisk(t, 256<<10)
	path := filepath.Join(disk.Dir, "state.json")
	if err := kit.WriteFile(path, []byte("old"), 0o644, true); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("n"), 64<<10)
	check := func(fault string, want syscall.Errno) {
		t.Helper()
		err := kit.WriteFile(path, big, 0o644, true)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want %v naming %s", fault, err, want, path)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("%s: contents %.20q, want the old", fault, got)
		}
		if tmp, _ := filepath.Glob(filepath.Join(disk.Dir, ".state.json.*")); len(tmp) > 0 {
			t.Errorf("%s: temporary files left: %v", fault, tmp)
		}
	}
	disk.Fill()
	check("full", syscall.ENOSPC)
	disk.Free()
	disk.ReadOnly()
	check("read-only", syscall.EROFS)
	disk.Writable()
	if err := kit.WriteFile(path, big, 0o644, true); err != nil {
		t.Fatalf("after the disk is writable again: %v", err)
	}
}
