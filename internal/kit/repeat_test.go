package kit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeat(t *testing.T) {
	var buf bytes.Buffer
	log := textLog(&buf)
	r := NewRepeat(log, "inference failed")
	for range 100 {
		r.Add("batch", 4)
	}
	if !r.Failing() {
		t.Error("Failing() = false after Add")
	}
	r.Flush()
	r.OK()
	if r.Failing() {
		t.Error("Failing() = true after OK")
	}
	r.OK() // nothing going on: no line
	want := []string{
		`level=WARN msg="inference failed" batch=4`,
		`level=WARN msg="inference failed" repeated=99 over=0s`,
		`level=INFO msg="inference failed: recovered" failures=100`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRepeatCause: a Quiet Repeat logs a failure when it starts and when
// its cause changes, never as a reminder, and its end with the count.
func TestRepeatCause(t *testing.T) {
	var buf bytes.Buffer
	log := textLog(&buf)
	r := NewRepeat(log, "cannot write").Quiet()
	r.lastLog = time.Now().Add(-time.Hour) // a reminder would be due
	for range 10 {
		r.AddCause("disk full", "n", 1)
	}
	r.lastLog = time.Now().Add(-time.Hour)
	for range 10 {
		r.AddCause("read-only", "n", 2)
	}
	r.OK("file", "journal")
	r.AddCause("disk full") // a new failure, after the end of the last
	want := []string{
		`level=WARN msg="cannot write" cause="disk full" n=1`,
		`level=WARN msg="cannot write" cause=read-only n=2`,
		`level=INFO msg="cannot write: recovered" file=journal failures=20`,
		`level=WARN msg="cannot write" cause="disk full"`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// textLog logs as text into buf without times, so that a test can compare
// the lines.
func textLog(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
}
