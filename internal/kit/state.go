package kit

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"
)

// StateFiles follows the writes of the state folder's files (the MQTT
// outbox, the event journal, the score history, the calibration, …), each
// through its StateFile, so that a disk that fills up or turns read-only is
// logged a few times, not once per write, and shows in the metrics and the
// status page. It is safe for concurrent use.
type StateFiles struct {
	log   *slog.Logger
	mu    sync.Mutex
	files []*StateFile
}

// NewStateFiles returns an empty set that logs to log.
func NewStateFiles(log *slog.Logger) *StateFiles { return &StateFiles{log: log} }

// File returns the StateFile called name, made on first use. effect says
// what a failed write costs, for its log line ("after a crash the events
// open now would not be ended").
func (s *StateFiles) File(name, effect string) *StateFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if f.name == name {
			return f
		}
	}
	f := &StateFile{name: name, effect: effect, rep: NewRepeat(s.log, "cannot write to the state folder").Quiet()}
	s.files = append(s.files, f)
	return f
}

// Status is every file's, in the order they were first used.
func (s *StateFiles) Status() []StateFileStatus {
	s.mu.Lock()
	files := append([]*StateFile(nil), s.files...)
	s.mu.Unlock()
	out := make([]StateFileStatus, len(files))
	for i, f := range files {
		out[i] = f.Status()
	}
	return out
}

// StateFile follows the writes of one file, or folder of files, of the
// state folder. A failure is logged when it starts and again only when its
// cause changes (a disk that fills up and is then remounted read-only: two
// lines), with the file's name, what it costs and the error; the first
// write that works after failures is logged once, with their count. The
// failures are counted for as long as the process runs. It is safe for
// concurrent use.
type StateFile struct {
	name, effect string

	mu       sync.Mutex
	rep      *Repeat
	failures uint64
	err      string // the failure going on; "" while writes work
}

// StateFileStatus is a StateFile's name and counts, for metrics and the
// status page.
type StateFileStatus struct {
	Name          string
	WriteFailures uint64 // writes that failed since the process started
	Error         string // the failure going on; "" while writes work
}

// Wrote records the result of one write and returns err. Each failure is
// counted: call it once per thing that could not be written, and not for a
// retry of it that fails again (see Retried).
func (f *StateFile) Wrote(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.okLocked()
		return nil
	}
	f.failures++
	f.err = err.Error()
	f.rep.AddCause(WriteCause(err), "file", f.name, "effect", f.effect, "error", err)
	return err
}

// Retried records the result of writing again what a failed write left
// unwritten: a success ends the failure (as Wrote(nil) does), a failure is
// neither counted nor logged again.
func (f *StateFile) Retried(err error) {
	if err == nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.okLocked()
	}
}

func (f *StateFile) okLocked() {
	if f.err != "" {
		f.rep.OK("file", f.name)
		f.err = ""
	}
}

// Failing reports whether the last write failed.
func (f *StateFile) Failing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err != ""
}

// Status is the file's counts.
func (f *StateFile) Status() StateFileStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return StateFileStatus{Name: f.name, WriteFailures: f.failures, Error: f.err}
}

// WriteCause names why a write failed, in the words a log line and an
// operator use: "disk full" and "read-only" (an SD card the kernel
// remounted after errors) are different causes with different remedies.
func WriteCause(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "disk full"
	case errors.Is(err, syscall.EROFS):
		return "read-only"
	case errors.Is(err, syscall.EDQUOT):
		return "quota exceeded"
	case errors.Is(err, syscall.EIO):
		return "I/O error"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return "other"
}
