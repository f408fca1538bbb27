package daemon

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// journal keeps, in the state folder, the last start or update of every
// event that has not ended, so that events a run leaves open when it dies
// (SIGKILL, power cut, OOM) are ended by the next run: without it a
// subscriber would hold an ON state, and an automation its "arrived", for
// ever. It is the rules' memory across runs, kept by the daemon because
// rules does no I/O; it does not depend on the sink.
//
// It is used by one goroutine at a time (start-up, then the rules loop).
// The file is rewritten, through a temporary file and a rename, on every
// start, update and end; it is not fsync'ed: a SIGKILL keeps it (page
// cache), and a power cut costs at most the ends of the events of its last
// second. A save that fails (a full or read-only disk) leaves the last
// file as it was; the list in memory stays right, and is saved again at
// the next event, or by retry once the disk works.
type journal struct {
	path    string
	log     *slog.Logger
	file    *kit.StateFile         // the saves' results: logged once per cause, counted
	open    map[string]rules.Event // id → last start or update
	lastTry time.Time              // of retry
}

// journalEffect is what a journal that cannot be saved costs.
const journalEffect = "after a crash, the events open now would not be ended (their ON states would stay)"

// journalRetryEvery is how often retry saves a journal whose last save
// failed: soon enough after the disk works again, rarely enough to cost
// nothing while it does not.
const journalRetryEvery = 10 * time.Second

// journalFile is the journal's name in the state folder. legacyJournal is
// where the MQTT sink kept the same list before the journal existed; a run
// that finds it takes its events over.
const (
	journalFile   = "open-events.json"
	legacyJournal = "mqtt/open-events.json"
)

// openJournal reads the journal in stateDir (creating the folder) and
// returns it with the events the last run left open, oldest first. A
// journal that cannot be read is set aside, not fatal: it only matters
// after a crash. Its saves are accounted to file (nil: one of its own).
func openJournal(stateDir string, file *kit.StateFile, log *slog.Logger) (*journal, []rules.Event, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("state_dir %s: %w", stateDir, errors.Unwrap(err))
	}
	if file == nil {
		file = kit.NewStateFiles(log).File("journal", journalEffect)
	}
	j := &journal{path: filepath.Join(stateDir, journalFile), log: log, file: file, open: map[string]rules.Event{}}
	legacy := filepath.Join(stateDir, legacyJournal)
	for _, p := range []string{j.path, legacy} {
		raw, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var evs []rules.Event
		if err == nil {
			err = json.Unmarshal(raw, &evs)
		}
		if err != nil {
			log.Warn("event journal unreadable; set aside (events the last run left open are not ended)", "file", p, "err", err)
			os.Rename(p, p+".unreadable")
			continue
		}
		for _, ev := range evs {
			if ev.ID != "" && ev.Type != rules.TypeEnd {
				j.open[ev.ID] = ev
			}
		}
	}
	left := j.list()
	if err := j.file.Wrote(j.save()); err == nil {
		os.Remove(legacy) // taken over
	}
	return j, left, nil
}

// record notes an event: a start or update is open until its end.
func (j *journal) record(ev rules.Event) {
	if ev.Type == rules.TypeEnd {
		if _, ok := j.open[ev.ID]; !ok {
			return // nothing changes
		}
		delete(j.open, ev.ID)
	} else {
		j.open[ev.ID] = ev
	}
	j.file.Wrote(j.save()) // each event not journaled is one failure
}

// retry saves the journal again when its last save failed, at most every
// journalRetryEvery (the rules loop calls it every tick).
func (j *journal) retry(now time.Time) {
	if !j.file.Failing() || now.Sub(j.lastTry) < journalRetryEvery {
		return
	}
	j.lastTry = now
	j.file.Retried(j.save())
}

// save writes the open events.
func (j *journal) save() error {
	b, err := json.Marshal(j.list())
	if err == nil {
		err = kit.WriteFile(j.path, b, 0o644, false)
	}
	return err
}

// clockJumped moves the open events' times by the wall clock's jump, as
// the rules report them from now on, so that a run after a crash ends
// them with the start time their last messages carried.
func (j *journal) clockJumped(d time.Duration) {
	if len(j.open) == 0 {
		return
	}
	for id, ev := range j.open {
		ev.StartTime, ev.FrameTime = ev.StartTime.Add(d), ev.FrameTime.Add(d)
		j.open[id] = ev
	}
	j.file.Wrote(j.save())
}

// list returns the open events, oldest first (then by id).
func (j *journal) list() []rules.Event {
	evs := make([]rules.Event, 0, len(j.open))
	for _, ev := range j.open {
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b rules.Event) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.ID, b.ID))
	})
	return evs
}
