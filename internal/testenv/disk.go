package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Disk is a small tmpfs mounted for one test: a state folder that can be
// filled to the brim (Fill, Free) or made read-only (ReadOnly, Writable),
// as an SD card fills up or is remounted read-only by the kernel after an
// error. Mounting needs root; SmallDisk fails or skips a test without it
// (see Need). The disk is unmounted in t.Cleanup, lazily if something
// still holds it open.
type Disk struct {
	t      testing.TB
	Dir    string
	filler string
}

// SmallDisk mounts a tmpfs of the given size (bytes) on a folder in the
// test's temp dir.
func SmallDisk(t testing.TB, size int64) *Disk {
	t.Helper()
	Need(t, os.Geteuid() == 0 && mountWorks(), "root, to mount a tmpfs")
	d := &Disk{t: t, Dir: filepath.Join(t.TempDir(), "disk")}
	d.filler = filepath.Join(d.Dir, "filler")
	if err := os.Mkdir(d.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", d.Dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", d.Dir, err, out)
	}
	t.Cleanup(func() {
		// Registered after t.TempDir's removal, so it runs before it.
		if err := exec.Command("umount", d.Dir).Run(); err != nil {
			exec.Command("umount", "-l", d.Dir).Run()
		}
	})
	return d
}

// mountWorks reports whether this process may mount a tmpfs (root in a
// container without CAP_SYS_ADMIN may not).
func mountWorks() bool {
	dir, err := os.MkdirTemp("", "siglipd-mount-")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).Run() != nil {
		return false
	}
	exec.Command("umount", dir).Run()
	return true
}

// Fill writes a file that takes every byte left on the disk.
func (d *Disk) Fill() {
	d.t.Helper()
	f, err := os.OpenFile(d.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		_, err := f.Write(buf)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			d.t.Fatalf("filling %s: %v", d.Dir, err)
		}
	}
}

// Free removes what Fill wrote.
func (d *Disk) Free() {
	d.t.Helper()
	if err := os.Remove(d.filler); err != nil {
		d.t.Fatal(err)
	}
}

// ReadOnly remounts the disk read-only. A remount fails while a file is
// open for writing; that is retried for a few seconds (a write in
// progress ends), then fails the test naming the cause.
func (d *Disk) ReadOnly() { d.remount("ro") }

// Writable remounts the disk read-write.
func (d *Disk) Writable() { d.remount("rw") }

func (d *Disk) remount(mode string) {
	d.t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out, err = exec.Command("mount", "-o", "remount,"+mode, d.Dir).CombinedOutput(); err == nil {
			return
		}
	}
	d.t.Fatalf("remount %s %s: %v: %s (busy: a file on it is open for writing)", mode, d.Dir, err, strings.TrimSpace(string(out)))
}
