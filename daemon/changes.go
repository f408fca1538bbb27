package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/infer"
)

// The change loop is the one owner of the running config: every change —
// a file edit, SIGHUP, a calibration applied on the page, a mark — is a
// request on d.changes, carried out in order on the loop's goroutine.
// Nothing else writes d.cfg, d.fileCfg or the calibration store, so no
// lock is held across the file reads, model calls and disk writes a change
// makes; readers take d.mu only to copy a pointer. The loop ends when Run's
// context does, before the stages stop: a change can never reach the rules
// loop after it has gone, and a request that comes too late is refused.

// DefaultWatchInterval is how often the config file is checked for changes.
// Polling (not inotify) also sees changes through bind mounts and editors
// that replace the file, and a write caught half-done is simply rejected and
// picked up complete at the next poll.
const DefaultWatchInterval = 2 * time.Second

// changeRequest is one change for the loop: fn runs on it, its error comes
// back on done.
type changeRequest struct {
	what string
	fn   func() error
	done chan error // buffered: the loop never waits for the requester
}

// errStopping answers a change that comes after the loop has ended.
var errStopping = fmt.Errorf("%w: siglipd is stopping", calibrate.ErrUnavailable)

// change runs fn on the change loop and returns its error. Once the loop
// has taken the request it is carried out whatever happens to ctx (a
// change is never half done); ctx only bounds the wait for the loop.
func (d *daemon) change(ctx context.Context, what string, fn func() error) error {
	r := changeRequest{what: what, fn: fn, done: make(chan error, 1)}
	select {
	case d.changes <- r:
		return <-r.done
	case <-d.changesDone:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveChanges is the change loop; it runs until ctx is cancelled.
func (d *daemon) serveChanges(ctx context.Context) {
	var poll <-chan time.Time
	var last [32]byte
	if d.opts.WatchInterval > 0 && d.opts.ConfigPath != "" {
		last, _ = fileSum(d.opts.ConfigPath)
		t := time.NewTicker(d.opts.WatchInterval)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
			d.reload("SIGHUP")
			last, _ = fileSum(d.opts.ConfigPath)
		case <-poll:
			sum, err := fileSum(d.opts.ConfigPath)
			if err == nil && sum != last {
				last = sum
				d.reload("config file changed")
			}
		case r := <-d.changes:
			r.done <- r.fn()
		}
	}
}

// fileSum is the checksum of the first configs.MaxFileSize+1 bytes of
// path, read through a small buffer: the file is polled every few seconds,
// and one replaced by something huge (a log, a disk image) must not be read
// whole each time. Past the limit Load refuses the file anyway.
func fileSum(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, configs.MaxFileSize+1)); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// reload re-reads and re-validates the whole file, plans the change (diff)
// and applies it; it runs on the change loop. An invalid file, or labels
// that cannot be embedded, change nothing.
func (d *daemon) reload(reason string) error {
	path := d.opts.ConfigPath
	cfg, err := configs.Load(path)
	if err != nil {
		var errs configs.Errors
		lines, problems := []string{err.Error()}, 1
		if errors.As(err, &errs) {
			lines, problems = errs.Lines(), len(errs)
		}
		d.log.Error("config reload rejected; the running config stays", "reason", reason, "file", path, "problems", problems, "errors", lines)
		d.metrics.reloads.WithLabelValues("rejected").Inc()
		return err
	}
	old := d.config()
	p := diff(old, d.effective(cfg))
	if err := d.apply(old, p); err != nil {
		d.log.Error("config reload rejected; the running config stays", "reason", reason, "file", path, "err", err)
		d.metrics.reloads.WithLabelValues("rejected").Inc()
		return err
	}
	d.mu.Lock()
	d.fileCfg = cfg
	d.mu.Unlock()
	d.metrics.reloads.WithLabelValues("applied").Inc()
	d.log.Info("config reloaded", "reason", reason, "file", path, "added", names(p.start), "removed", p.stop,
		"restarted", names(p.restart), "labels_embedded", names(p.embed), "rules_changed", p.rules != nil)
	if len(p.restartOnly) > 0 {
		d.log.Warn("these config sections changed but only apply after a restart; running values kept", "sections", p.restartOnly)
	}
	return nil
}

// apply carries out a plan, on the change loop. Labels are embedded first: if that fails,
// nothing has changed. A camera that cannot start is logged and skipped
// (its config was valid; the cause is outside, and capture retries).
func (d *daemon) apply(old *configs.Config, p reloadPlan) error {
	sets := map[string]*infer.LabelSet{}
	for _, c := range p.embed {
		set, err := d.model.EmbedLabels(inferLabels(c))
		if err != nil {
			return fmt.Errorf("camera %q labels: %w", c.Name, err)
		}
		sets[c.Name] = set
	}
	for _, name := range p.stop {
		d.cameras.stop(name)
		d.sets.forget(name)
		d.live.Forget(name)
	}
	for name, set := range sets {
		d.sets.setLabels(name, set)
	}
	for _, c := range p.gate {
		d.sets.setGate(c.Name, c.SkipUnchanged)
	}
	for _, c := range p.restart {
		d.cameras.stop(c.Name)
	}
	for _, c := range append(p.restart, p.start...) {
		if err := d.cameras.start(c); err != nil {
			d.log.Error("reload: camera not started", "camera", c.Name, "err", err)
		}
	}
	d.mu.Lock()
	d.cfg = p.cfg
	d.mu.Unlock()
	d.metrics.forget(old, p.cfg)
	if p.rules != nil {
		d.rules.setRules(p.rules, p.quietTimeout)
	}
	if p.announce != nil {
		d.sink.Announce(p.announce)
	}
	return nil
}

func names(cams []configs.Camera) []string {
	out := make([]string, len(cams))
	for i, c := range cams {
		out[i] = c.Name
	}
	return out
}
