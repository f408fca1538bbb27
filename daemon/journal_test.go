package daemon

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/siglipd/siglipd/rules"
)

// TestJournal: the journal holds the last start or update of each event
// until its end, returns what a previous run left open (also from the file
// the MQTT sink kept before the journal existed, which it takes over), and
// sets an unreadable file aside instead of failing.
func TestJournal(t *testing.T) {
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	ev := func(id, typ string, sec int) rules.Event {
		return rules.Event{V: 1, Type: typ, ID: id, Camera: "porch", Label: "red",
			StartTime: at.Add(time.Duration(sec) * time.Second), FrameTime: at.Add(time.Duration(sec) * time.Second)}
	}
	write := func(t *testing.T, path string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(evs []rules.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID+"/"+e.Type)
		}
		return out
	}
	log := slog.New(slog.DiscardHandler)

	t.Run("record", func(t *testing.T) {
		dir := t.TempDir()
		j, left, err := openJournal(dir, nil, log)
		if err != nil || len(left) != 0 {
			t.Fatalf("fresh journal: %v, %v", left, err)
		}
		j.record(ev("b", rules.TypeStart, 2))
		j.record(ev("a", rules.TypeStart, 1))
		j.record(ev("a", rules.TypeUpdate, 1))
		j.record(ev("b", rules.TypeEnd, 2))
		_, left, _ = openJournal(dir, nil, log) // what a run killed now would leave
		if got := ids(left); len(got) != 1 || got[0] != "a/update" {
			t.Errorf("left open = %v, want [a/update]", got)
		}
	})
	t.Run("legacy file taken over", func(t *testing.T) {
		dir := t.TempDir()
		legacy := filepath.Join(dir, legacyJournal)
		write(t, legacy, []rules.Event{ev("old", rules.TypeStart, 0)})
		j, left, err := openJournal(dir, nil, log)
		if err != nil || len(ids(left)) != 1 || left[0].ID != "old" {
			t.Fatalf("left = %v, %v; want the legacy file's event", ids(left), err)
		}
		if _, err := os.Stat(legacy); !os.IsNotExist(err) {
			t.Errorf("the legacy file is still there: %v", err)
		}
		j.record(rules.Ended(left[0], at))
		if _, left, _ = openJournal(dir, nil, log); len(left) != 0 {
			t.Errorf("after its end: %v", ids(left))
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, journalFile), []byte("{not json"), 0o644)
		_, left, err := openJournal(dir, nil, log)
		if err != nil || len(left) != 0 {
			t.Fatalf("left = %v, %v; want none and no error", ids(left), err)
		}
		if _, err := os.Stat(filepath.Join(dir, journalFile+".unreadable")); err != nil {
			t.Errorf("not set aside: %v", err)
		}
	})
}
