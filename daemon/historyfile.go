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

// startHistory loads the score history the last run saved and saves it
// every historySaveEvery; the function it returns saves it once more and
// stops (call it after the rules loop has ended, so the last scores and
// events are in).
func (d *daemon) startHistory(cfg *configs.Config) (stop func()) {
	path := filepath.Join(cfg.StateDir, historyFile)
	if err := d.history.Load(path, d.clock.wallNow()); err != nil {
		d.log.Warn("score history of the last run not loaded; starting empty", "err", err)
	}
	save := func() {
		if err := d.history.Save(path); err != nil {
			d.log.Warn("score history not saved", "err", err)
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(historySaveEvery)
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
