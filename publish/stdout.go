package publish

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/siglipd/siglipd/rules"
)

// Stdout writes every event as one JSON line (the same v1 payload as
// <prefix>/events) for people without a broker: `siglipd ... | jq`.
// Announce, scores and snapshots are ignored. It is safe for concurrent use.
type Stdout struct {
	mu  sync.Mutex
	enc *json.Encoder
	st  Status
}

// NewStdout writes to w (usually os.Stdout).
func NewStdout(w io.Writer) *Stdout {
	return &Stdout{enc: json.NewEncoder(w), st: Status{Sink: "stdout", Connected: true}}
}

// Start does nothing: there is nothing to connect to.
func (s *Stdout) Start(context.Context) error { return nil }

// Announce does nothing: there is no Home Assistant to tell.
func (s *Stdout) Announce([]Camera) {}

// Event writes ev as a JSON line. A write error is counted and kept in
// Status().LastError; the event is lost (stdout has no outbox).
func (s *Stdout) Event(ev rules.Event, _ []byte) {
	ev = normalizeEvent(ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enc.Encode(ev); err != nil {
		s.st.EventsDropped++
		s.st.LastError, s.st.LastErrorTime = "stdout: "+err.Error(), time.Now()
		return
	}
	s.st.Published++
	s.st.EventsPublished++
}

// CameraAvailable does nothing: stdout carries events only.
func (s *Stdout) CameraAvailable(string, bool) {}

// Scores does nothing: a line per frame would drown the events.
func (s *Stdout) Scores(string, time.Time, map[string]float64) {}

// Close does nothing: every line was written when Event returned.
func (s *Stdout) Close(context.Context) error { return nil }

// Status reports the lines written.
func (s *Stdout) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}
