package daemon

import (
	"path/filepath"
	"time"

	"github.com/siglipd/siglipd/configs"
)

// historyFile is the score history's file in the state folder.
const historyFile = "history.gob"

// historySaveEvery is how often the score history is saved while running:
// a crash loses at most this much of it. Not more often: the file holds an
// hour of every label at full rate, and edge boxes write to SD cards.
const historySaveEvery = 10 * time.Minute

// historyEffect is what a history that cannot be saved costs.
const historyEffect = "the score history since its last save would be lost at a restart"

// startHistory loads the score history the last run saved and saves it
// every interval (historySaveEvery); the function it returns saves it once
// more and stops (call it after the rules loop has ended, so the last
// scores and events are in). A save that fails (a full or read-only disk)
// keeps the last file as it was and the history in memory; the next one
// tries again.
func (d *daemon) startHistory(cfg *configs.Config, interval time.Duration) (stop func()) {
	path := filepath.Join(cfg.StateDir, historyFile)
	if err := d.history.Load(path, d.clock.wallNow()); err != nil {
		d.log.Warn("score history of the last run not loaded; starting empty", "err", err)
	}
	file := d.state.File("history", historyEffect)
	save := func() { file.Wrote(d.history.Save(path)) }
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				save()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		save()
	}
}
