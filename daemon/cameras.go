package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
)

// cameraSet is the running cameras: one capture.Source each, all handing
// frames to the same latest-frame hand-off. Start and stop come from Run and
// reloads; status is read by HTTP, metrics and the rules loop.
type cameraSet struct {
	out    *capture.Latest
	log    *slog.Logger
	ctx    context.Context // parent of every camera's context; cancelled by stopAll
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*cameraRun
}

// cameraRun is one running camera.
type cameraRun struct {
	source capture.Source
	cancel context.CancelFunc
	done   chan struct{}
}

func newCameraSet(out *capture.Latest, log *slog.Logger) *cameraSet {
	ctx, cancel := context.WithCancel(context.Background())
	return &cameraSet{out: out, log: log, ctx: ctx, cancel: cancel, runs: map[string]*cameraRun{}}
}

// startAll starts the cameras; the first that cannot start is an error.
func (s *cameraSet) startAll(cams []configs.Camera) error {
	for _, c := range cams {
		if err := s.start(c); err != nil {
			return err
		}
	}
	return nil
}

// start starts one camera (a new one, or one stop just stopped).
func (s *cameraSet) start(c configs.Camera) error {
	opts := capture.Options{
		Name: c.Name, URL: c.URL.Reveal(), FPS: c.FPS, ReadTimeout: c.ReadTimeout.D(), OpenTimeout: c.OpenTimeout.D(),
		RTSPTransport: c.RTSPTransport, Decode: capture.Decode(c.Decode), HWAccel: capture.HWAccel(c.HWAccel), Loop: c.Loop, Logger: s.log,
		Device: capture.DeviceMode{Format: c.Format, Width: c.Width, Height: c.Height, FPS: c.FrameRate},
	}
	if c.Crop != nil {
		opts.Crop = &capture.Crop{X: c.Crop.X, Y: c.Crop.Y, Width: c.Crop.Width, Height: c.Crop.Height, Pixels: c.Crop.InPixels()}
	}
	src, err := capture.New(opts)
	if err != nil {
		return fmt.Errorf("camera %q: %w", c.Name, err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	run := &cameraRun{source: src, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.runs[c.Name] = run
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(run.done)
		if err := src.Run(ctx, s.out); err != nil {
			s.log.Error("camera stopped", "camera", c.Name, "err", err)
		}
	}()
	return nil
}

// stop stops one camera and waits for it.
func (s *cameraSet) stop(name string) {
	s.mu.Lock()
	run, ok := s.runs[name]
	delete(s.runs, name)
	s.mu.Unlock()
	if ok {
		run.cancel()
		<-run.done
	}
}

// stopAll stops every camera and waits for them (shutdown).
func (s *cameraSet) stopAll() {
	s.cancel()
	s.wg.Wait()
}

// statuses is the status of every camera of cams that runs, in that order.
func (s *cameraSet) statuses(cams []configs.Camera) []capture.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]capture.Status, 0, len(s.runs))
	for _, c := range cams {
		if run, ok := s.runs[c.Name]; ok {
			out = append(out, run.source.Status())
		}
	}
	return out
}
