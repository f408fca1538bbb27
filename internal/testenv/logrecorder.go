package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogRecord is one record a LogRecorder kept: its attributes are flattened
// to strings (groups as "group.key").
type LogRecord struct {
	Time  time.Time
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func (r LogRecord) String() string {
	keys := make([]string, 0, len(r.Attrs))
	for k := range r.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", r.Time.Format("15:04:05.000"), r.Level, r.Msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, r.Attrs[k])
	}
	return b.String()
}

// LogRecorder keeps every record logged through its loggers, so a test can
// count what a component logs by message, level and attribute (how many
// lines per minute, per camera) rather than search text. It is safe for
// concurrent use.
type LogRecorder struct {
	mu   sync.Mutex
	recs []LogRecord
}

// NewLogRecorder returns a logger at debug level whose records the returned
// recorder keeps; they are printed when t fails.
func NewLogRecorder(t testing.TB) (*slog.Logger, *LogRecorder) {
	r := &LogRecorder{}
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			for _, rec := range r.Records(nil) {
				b.WriteString(rec.String())
				b.WriteByte('\n')
			}
			t.Logf("log records:\n%s", b.String())
		}
	})
	return slog.New(&recordHandler{r: r}), r
}

// Records returns the records kept so far for which keep is true (all of
// them for nil), in the order they were logged.
func (r *LogRecorder) Records(keep func(LogRecord) bool) []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogRecord
	for _, rec := range r.recs {
		if keep == nil || keep(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// Count is len(Records(keep)).
func (r *LogRecorder) Count(keep func(LogRecord) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if keep == nil || keep(rec) {
			n++
		}
	}
	return n
}

// ByMsg counts the records kept by keep per message.
func (r *LogRecorder) ByMsg(keep func(LogRecord) bool) map[string]int {
	out := map[string]int{}
	for _, rec := range r.Records(keep) {
		out[rec.Msg]++
	}
	return out
}

// Between keeps the records at level or above logged in [from, to).
func Between(level slog.Level, from, to time.Time) func(LogRecord) bool {
	return func(r LogRecord) bool { return r.Level >= level && !r.Time.Before(from) && r.Time.Before(to) }
}

type recordHandler struct {
	r      *LogRecorder
	attrs  []slog.Attr // from WithAttrs, keys already prefixed
	prefix string      // from WithGroup: "group."
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, rec slog.Record) error {
	out := LogRecord{Time: rec.Time, Level: rec.Level, Msg: rec.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		flatten(out.Attrs, "", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		flatten(out.Attrs, h.prefix, a)
		return true
	})
	h.r.mu.Lock()
	h.r.recs = append(h.r.recs, out)
	h.r.mu.Unlock()
	return nil
}

func flatten(into map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			flatten(into, p, g)
		}
		return
	}
	into[prefix+a.Key] = v.String()
}

func (h *recordHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		a.Key = h.prefix + a.Key
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *recordHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}
