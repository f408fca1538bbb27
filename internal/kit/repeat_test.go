package kit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRepeat(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
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
