package kit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestStateFile: many failed writes of one cause are one line, a new cause
// one more, a retry that fails again neither, and the first write that
// works one line with the count; the count stays for the metrics.
func TestStateFile(t *testing.T) {
	var buf bytes.Buffer
	log := textLog(&buf)
	files := NewStateFiles(log)
	f := files.File("journal", "events open now would not be ended after a crash")
	if files.File("journal", "") != f {
		t.Fatal("File returned a second StateFile for the same name")
	}
	full := &fs.PathError{Op: "write", Path: "/state/open-events.json", Err: syscall.ENOSPC}
	for range 5 {
		if err := f.Wrote(full); err != full {
			t.Fatalf("Wrote returned %v, want its argument", err)
		}
	}
	f.Retried(full)
	f.Wrote(fmt.Errorf("/state/open-events.json: %w", syscall.EROFS))
	if !f.Failing() || f.Status().WriteFailures != 6 {
		t.Fatalf("failing %v, status %+v; want failing, 6 failures", f.Failing(), f.Status())
	}
	f.Retried(nil)
	f.Wrote(nil)
	want := []string{
		`level=WARN msg="cannot write to the state folder" cause="disk full" file=journal effect="events open now would not be ended after a crash" error="write /state/open-events.json: no space left on device"`,
		`level=WARN msg="cannot write to the state folder" cause=read-only file=journal effect="events open now would not be ended after a crash" error="/state/open-events.json: read-only file system"`,
		`level=INFO msg="cannot write to the state folder: recovered" file=journal failures=6`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := files.Status(); len(st) != 1 || st[0] != (StateFileStatus{Name: "journal", WriteFailures: 6}) {
		t.Errorf("status %+v", st)
	}
}

func TestWriteCause(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, "disk full"},
		{fmt.Errorf("outbox: %w", &fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}), "read-only"},
		{syscall.EDQUOT, "quota exceeded"},
		{syscall.EIO, "I/O error"},
		{syscall.EACCES, "permission denied"},
		{syscall.ENAMETOOLONG, "file name too long"},
		{errors.New("gob: cannot encode"), "other"},
	} {
		if got := WriteCause(tt.err); got != tt.want {
			t.Errorf("WriteCause(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
