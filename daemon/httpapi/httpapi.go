// Package httpapi serves siglipd's HTTP endpoints: /healthz, /readyz,
// /metrics, /api/status, /api/cameras/{name}/snapshot.jpg, /api/history,
// the calibration endpoints (/api/marks, /api/marks/{id},
// /api/marks/{id}/frame.jpg, /api/calibration; calibration.go), the frame
// store's (/api/search, /api/frames/{id}, /api/frames/{id}/thumbnail.jpg,
// DELETE /api/frames, POST /api/preview; frames.go, labels.go), labels
// added on the page (POST /api/labels, DELETE /api/labels/{camera}/{label};
// labels.go) and the live
// page (web/index.html, which reads /api/status once a second and, with the
// frame store on, searches it, previews labels on it and adds them).
//
// Contract: the daemon owns the Server. Start returns once the listener is
// bound (a port in use is a start-up error, not a log line later) and
// serves in goroutines of its own; Close stops it, and the daemon closes it
// before it stops the stages. Handlers see the daemon only through the
// interfaces declared here (Backend, Live, Calibrator), concurrently with
// the pipeline, which never waits for them: every Backend method returns
// promptly, and a slow Live snapshot blocks only its own request. The JSON
// of every answer is defined here, from the daemon's own types; the
// daemon's errors are mapped to status codes here (calibrate.ErrNotFound
// 404, ErrConflict 409, ErrUnavailable 503).
package httpapi

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

//go:embed web/index.html
var indexHTML []byte

// Backend is the running daemon, as the status endpoints see it.
type Backend interface {
	Config() *configs.Config            // the running config (cameras, labels, thresholds)
	Cameras() []capture.Status          // the running cameras, in config order
	FramesDropped(camera string) uint64 // sampled frames replaced before inference took them
	FramesScored(camera string) uint64  // frames the model scored
	FramesSkipped(camera string) uint64 // frames the change gate spared the model
	FramesFailed(camera string) uint64  // frames in a batch the model failed to score
	Sink() publish.Status
	Model() infer.Info
	// Server is the inference server's state (always up for the local
	// backend).
	Server() infer.ServerState
	// History is a camera × label's score history since a time.
	History(camera, label string, since time.Time) history.Result
	// StateFiles is the state folder's files and their failed writes.
	StateFiles() []kit.StateFileStatus
}

// Live is what the page shows of each camera's last scored frame: the
// daemon's live.Board.
type Live interface {
	// Scores is a camera's last probabilities, when they were computed,
	// and its labels' states.
	Scores(camera string) (probs map[string]float64, at time.Time, states map[string]rules.LabelState)
	// Snapshot is the last scored frame as JPEG (nil before one), its
	// time and its probabilities; it may take an encoding's time.
	Snapshot(ctx context.Context, camera string) (jpeg []byte, at time.Time, probs map[string]float64, err error)
	// Crop is the region the model looks at in the last scored frame, and
	// that frame's size; ok is false for the whole frame or none.
	Crop(camera string) (r image.Rectangle, width, height int, ok bool)
}

// Options configure a Server. Backend, Live and Metrics are required.
type Options struct {
	Listen       string   // host:port; ":0" picks a free port (Addr says which)
	Token        string   // bearer token for everything but /healthz; "" for none
	AllowedHosts []string // see hostGuard
	Version      string
	Started      time.Time // for the uptime shown
	// Now is the wall time the history is labelled with, for ?since=
	// durations; nil: time.Now.
	Now        func() time.Time
	Metrics    http.Handler
	Backend    Backend
	Calibrator Calibrator // marks and thresholds from them; nil: those endpoints answer 404
	Frames     Frames     // the frame store; nil (store off): its endpoints answer 404
	Labels     Labels     // labels added on the page; nil: those endpoints answer 404
	Live       Live
	Logger     *slog.Logger
}

// Server is a running HTTP server.
type Server struct {
	srv  *http.Server
	addr string
}

// Start binds opts.Listen and serves until Close.
func Start(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", opts.Listen, err)
	}
	a := &api{Options: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.handleReady)
	mux.Handle("GET /metrics", opts.Metrics)
	mux.HandleFunc("GET /api/status", a.handleStatus)
	mux.HandleFunc("GET /api/cameras/{name}/snapshot.jpg", a.handleSnapshot)
	mux.HandleFunc("GET /api/history", a.handleHistory)
	if opts.Calibrator != nil {
		mux.HandleFunc("POST /api/marks", a.handleMark)
		mux.HandleFunc("DELETE /api/marks/{id}", a.handleDeleteMark)
		mux.HandleFunc("GET /api/marks/{id}/frame.jpg", a.handleMarkJPEG)
		mux.HandleFunc("GET /api/calibration", a.handleCalibration)
		mux.HandleFunc("POST /api/calibration", a.handleApply)
	}
	if opts.Frames != nil {
		mux.HandleFunc("GET /api/search", a.handleSearch)
		mux.HandleFunc("GET /api/frames/{id}", a.handleFrame)
		mux.HandleFunc("GET /api/frames/{id}/thumbnail.jpg", a.handleThumbnail)
		mux.HandleFunc("DELETE /api/frames", a.handleDeleteFrames)
		mux.HandleFunc("POST /api/preview", a.handlePreview)
	}
	if opts.Labels != nil {
		mux.HandleFunc("POST /api/labels", a.handleAddLabel)
		mux.HandleFunc("DELETE /api/labels/{camera}/{label}", a.handleRemoveLabel)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	s := &Server{
		srv: &http.Server{
			Handler:           newHostGuard(opts.Listen, opts.AllowedHosts, authenticate(opts.Token, mux)),
			ReadHeaderTimeout: 5 * time.Second,
		},
		addr: ln.Addr().String(),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("http server stopped", "err", err)
		}
	}()
	opts.Logger.Info("http server listening", "addr", s.addr)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the server, letting requests in progress finish until ctx ends.
func (s *Server) Close(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// authenticate requires the bearer token (or ?token= for the page's images)
// on everything but /healthz, when a token is configured.
func authenticate(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if got == "" {
			got = r.URL.Query().Get("token")
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="siglipd"`)
			http.Error(w, "unauthorized: this siglipd needs its http.token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// api holds the handlers.
type api struct{ Options }

// Ready is /readyz's body.
type Ready struct {
	Ready   bool              `json:"ready"`
	Model   bool              `json:"model"`
	Sink    bool              `json:"sink"`
	Reason  string            `json:"reason,omitempty"`
	Cameras map[string]string `json:"cameras"`
}

// handleReady: ready means the model can score (loaded, which it is once
// the server runs, and for the remote backend its inference server
// answering) and events can be delivered (the broker is connected).
// Cameras are listed but do not decide: one dead camera should not make an
// orchestrator restart a daemon serving the rest. Nor does the state
// folder: on a full or read-only disk events are still published, from
// memory, and a restart would lose those the broker has not taken yet
// without making the disk any better (/api/status shows it).
func (a *api) handleReady(w http.ResponseWriter, r *http.Request) {
	srv := a.Backend.Server()
	st := Ready{Model: srv.Up, Cameras: map[string]string{}}
	sink := a.Backend.Sink()
	st.Sink = sink.Connected
	for _, c := range a.Backend.Cameras() {
		st.Cameras[c.Name] = string(c.State)
	}
	st.Ready = st.Model && st.Sink
	var reasons []string
	if !st.Model {
		reason := "inference server " + srv.Server + " is down"
		if srv.LastError != "" {
			reason += ": " + srv.LastError
		}
		reasons = append(reasons, reason)
	}
	if !st.Sink {
		reason := "not connected to the broker"
		if sink.LastError != "" {
			reason += ": " + sink.LastError
		}
		reasons = append(reasons, reason)
	}
	st.Reason = strings.Join(reasons, "; ")
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

// Status is /api/status: everything the live page shows.
type Status struct {
	Version string   `json:"version"`
	Uptime  string   `json:"uptime"`
	Model   Model    `json:"model"`
	Sink    Sink     `json:"sink"`
	State   State    `json:"state"`
	Cameras []Camera `json:"cameras"`
	Batch   Batch    `json:"batch"`
	// Store is the frame store; absent when it is off.
	Store *StoreStatus `json:"store,omitempty"`
}

// State is the state folder (state_dir): for each file siglipd has written
// in it, how many writes failed, and the failure going on, if one is. A
// full or read-only disk does not make siglipd unready (events are still
// published, from memory); this is where it shows, with the metric
// siglipd_state_write_failures_total.
type State struct {
	Dir   string      `json:"dir"`
	Files []StateFile `json:"files"`
}

// StateFile is one file (or folder of files) of the state folder.
type StateFile struct {
	File          string `json:"file"` // outbox, retained, journal, history or calibration
	WriteFailures uint64 `json:"write_failures"`
	Error         string `json:"error,omitempty"` // writes fail now; absent once they work
}

// Model is the model in use.
type Model struct {
	Dir    string `json:"dir"`
	Device string `json:"device"`
	Input  string `json:"input"` // WIDTHxHEIGHT, what frames are resized to
	// Family is SigLIP or SigLIP 2; Size the published name of its width
	// (base, large, so400m, giant), absent for others; Parameters the
	// weights in its towers (0 with the remote backend).
	Family     string           `json:"family"`
	Size       string           `json:"size,omitempty"`
	PatchSize  int              `json:"patch_size"`
	Parameters int64            `json:"parameters"`
	Backend    string           `json:"backend"`          // local or remote
	Server     *InferenceServer `json:"server,omitempty"` // the remote backend's inference server
}

// InferenceServer is the remote backend's inference server as the last calls found it.
type InferenceServer struct {
	Address   string    `json:"address"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`                // when up last changed
	LastError string    `json:"last_error,omitempty"` // kept after recovery
	Failures  uint64    `json:"failures"`             // failed calls since start
}

// Sink is where events go and whether they get there.
type Sink struct {
	Kind        string `json:"kind"`
	Connected   bool   `json:"connected"`
	OutboxDepth int    `json:"outbox_depth"`
	LastError   string `json:"last_error,omitempty"`
}

// Batch is the batcher's configuration.
type Batch struct {
	Size    int    `json:"size"`
	MaxWait string `json:"max_wait"`
}

// Camera is one camera: its capture status, and its labels' last scores.
// The frame counts are those of the metrics of the same names: decoded
// from the stream, sampled at the camera's fps, and each sampled frame then
// dropped (not looked at: replaced by a newer one before inference took it,
// or left at shutdown), skipped (looked like the last scored frame: its
// probabilities were reused), failed (the model could not score it) or
// scored by the model.
type Camera struct {
	Name          string     `json:"name"`
	URL           string     `json:"url"`
	State         string     `json:"state"`
	LastError     string     `json:"last_error,omitempty"`
	LastFrame     *time.Time `json:"last_frame"`
	ScoredAt      *time.Time `json:"scored_at"`
	FramesDecoded uint64     `json:"frames_decoded"`
	FramesSampled uint64     `json:"frames_sampled"`
	FramesDropped uint64     `json:"frames_dropped"`
	FramesSkipped uint64     `json:"frames_skipped"`
	FramesFailed  uint64     `json:"frames_failed"`
	FramesScored  uint64     `json:"frames_scored"`
	FPSDecoded    float64    `json:"fps_decoded"`
	FPSSampled    float64    `json:"fps_sampled"`
	Reconnects    uint64     `json:"reconnects"`
	Width         int        `json:"width"`
	Height        int        `json:"height"`
	// Decode is what the camera decodes now: "all" or "keyframes" (with
	// decode: auto, the one it chose; a camera that is not running shows
	// its setting). KeyframeRate is the key frames a second it sends,
	// measured (0 until measured): decoding key frames only, the most it
	// can sample. HWAccel is the hardware decoder in use, "none" for
	// software.
	Decode       string  `json:"decode"`
	KeyframeRate float64 `json:"keyframe_rate"`
	HWAccel      string  `json:"hwaccel"`
	// Crop is the region the model looks at, [x, y, width, height] in
	// pixels of the last scored frame; absent for the whole frame.
	Crop   *[4]int `json:"crop,omitempty"`
	Labels []Label `json:"labels"`
}

// Label is one label of a camera: its last probability and its state.
type Label struct {
	Name         string   `json:"name"`
	Probability  *float64 `json:"probability"` // null before the first scored frame
	Threshold    float64  `json:"threshold"`
	OffThreshold float64  `json:"off_threshold"`
	On           bool     `json:"on"`
	TopScore     float64  `json:"top_score,omitempty"`
	Since        *string  `json:"since,omitempty"`
	// Added: the label was added on the page (state_dir/labels.json), not
	// in the config file; the page can remove it.
	Added bool `json:"added,omitempty"`
}

func (a *api) handleStatus(w http.ResponseWriter, r *http.Request) {
	b := a.Backend
	cfg := b.Config()
	info := b.Model()
	sink := b.Sink()
	st := Status{
		Version: a.Version,
		Uptime:  time.Since(a.Started).Round(time.Second).String(),
		Model: Model{Dir: info.Dir, Device: info.Device, Input: fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight), Backend: info.Backend,
			Family: info.Description.Family, Size: info.Description.Size, PatchSize: info.Description.PatchSize, Parameters: info.Description.Parameters},
		Sink:  Sink{Kind: cfg.Sink, Connected: sink.Connected, OutboxDepth: sink.OutboxDepth, LastError: sink.LastError},
		Batch: Batch{Size: cfg.Inference.BatchSize, MaxWait: cfg.Inference.MaxBatchWait.String()},
		State: State{Dir: cfg.StateDir, Files: []StateFile{}},
	}
	if a.Frames != nil {
		st.Store = storeStatus(a.Frames.Stats())
	}
	for _, f := range b.StateFiles() {
		st.State.Files = append(st.State.Files, StateFile{File: f.Name, WriteFailures: f.WriteFailures, Error: f.Error})
	}
	if srv := b.Server(); srv.Backend == "remote" {
		st.Model.Server = &InferenceServer{Address: srv.Server, Up: srv.Up, Since: srv.Since, LastError: srv.LastError, Failures: srv.Failures}
	}
	running := map[string]capture.Status{}
	for _, s := range b.Cameras() {
		running[s.Name] = s
	}
	for _, cc := range cfg.Cameras {
		c := Camera{Name: cc.Name, URL: cc.URL.String(), State: "stopped", Decode: cc.Decode, HWAccel: cc.HWAccel}
		if s, ok := running[cc.Name]; ok {
			c = Camera{Name: s.Name, URL: s.URL, State: string(s.State), LastError: s.LastError,
				FramesDecoded: s.FramesDecoded, FramesSampled: s.FramesSampled,
				FramesDropped: b.FramesDropped(s.Name), FramesSkipped: b.FramesSkipped(s.Name), FramesScored: b.FramesScored(s.Name),
				FramesFailed: b.FramesFailed(s.Name),
				FPSDecoded:   s.FPSDecoded, FPSSampled: s.FPSSampled, Reconnects: s.Reconnects, Width: s.Width, Height: s.Height,
				Decode: string(s.Decode), KeyframeRate: s.KeyframeRate, HWAccel: string(s.HWAccel)}
			if !s.LastFrame.IsZero() {
				t := s.LastFrame
				c.LastFrame = &t
			}
		}
		if r, _, _, ok := a.Live.Crop(cc.Name); ok {
			c.Crop = &[4]int{r.Min.X, r.Min.Y, r.Dx(), r.Dy()}
		}
		probs, scoredAt, states := a.Live.Scores(cc.Name)
		if !scoredAt.IsZero() {
			c.ScoredAt = &scoredAt
		}
		for _, l := range cc.Labels {
			al := Label{Name: l.Name, Threshold: l.Threshold, OffThreshold: l.EffectiveOffThreshold(), Added: l.Source == configs.SourcePage}
			if p, ok := probs[l.Name]; ok {
				al.Probability = &p
			}
			if s, ok := states[l.Name]; ok && s.On {
				al.On, al.TopScore = true, s.TopScore
				since := s.StartTime.UTC().Format(time.RFC3339)
				al.Since = &since
			}
			c.Labels = append(c.Labels, al)
		}
		st.Cameras = append(st.Cameras, c)
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.hasCamera(name) {
		http.Error(w, fmt.Sprintf("no camera %q", name), http.StatusNotFound)
		return
	}
	jpeg, at, _, err := a.Live.Snapshot(r.Context(), name)
	switch {
	case err != nil:
		http.Error(w, "encoding the frame: "+err.Error(), http.StatusInternalServerError)
	case jpeg == nil:
		http.Error(w, fmt.Sprintf("camera %q has no scored frame yet", name), http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Last-Modified", at.UTC().Format(http.TimeFormat))
		w.Write(jpeg)
	}
}

// History is /api/history: one camera × label's probabilities over time,
// compact (arrays, not objects: an hour at full rate is thousands of
// points), with the events of the same span.
type History struct {
	Camera       string  `json:"camera"`
	Label        string  `json:"label"`
	Threshold    float64 `json:"threshold"`
	OffThreshold float64 `json:"off_threshold"`
	Since        string  `json:"since"`
	// Points are [time in Unix ms, probability], every scored (or skipped)
	// frame of the recent window.
	Points [][2]float64 `json:"points"`
	// Buckets are [start in Unix ms, min, max, mean, frames], one a minute,
	// for the time before the first point.
	Buckets [][5]float64   `json:"buckets"`
	Events  []HistoryEvent `json:"events"`
	// ClockJumps counts the wall-clock jumps the daemon's history was
	// moved by since it started: a client that keeps points it fetched
	// earlier drops them and fetches again when it changes.
	ClockJumps int `json:"clock_jumps"`
}

// HistoryEvent is one event of a History.
type HistoryEvent struct {
	ID       string     `json:"id"`
	Start    time.Time  `json:"start"`
	End      *time.Time `json:"end"` // null while it lasts
	TopScore float64    `json:"top_score"`
}

// defaultHistory is the span /api/history returns without since.
const defaultHistory = time.Hour

func (a *api) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	camera, label := q.Get("camera"), q.Get("label")
	var lab *configs.Label
	for _, c := range a.Backend.Config().Cameras {
		for i, l := range c.Labels {
			if c.Name == camera && l.Name == label {
				lab = &c.Labels[i]
			}
		}
	}
	if lab == nil {
		http.Error(w, fmt.Sprintf("no label %q on a camera %q (give ?camera=NAME&label=NAME)", label, camera), http.StatusNotFound)
		return
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	since, err := parseSince(q.Get("since"), now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res := a.Backend.History(camera, label, since)
	h := History{Camera: camera, Label: label, Threshold: lab.Threshold, OffThreshold: lab.EffectiveOffThreshold(),
		Since: since.UTC().Format(time.RFC3339Nano), Points: make([][2]float64, len(res.Points)),
		Buckets: make([][5]float64, len(res.Buckets)), Events: []HistoryEvent{}, ClockJumps: res.ClockJumps}
	for i, p := range res.Points {
		h.Points[i] = [2]float64{float64(p.Ms), float64(p.P)}
	}
	for i, b := range res.Buckets {
		h.Buckets[i] = [5]float64{float64(b.T.UnixMilli()), float64(b.Min), float64(b.Max), float64(b.Mean), float64(b.N)}
	}
	for _, e := range res.Events {
		h.Events = append(h.Events, HistoryEvent{ID: e.ID, Start: e.Start, End: e.End, TopScore: e.TopScore})
	}
	writeJSON(w, http.StatusOK, h)
}

// parseSince reads ?since=: a duration back from now ("15m", "24h"), an
// RFC 3339 time, or Unix milliseconds; "" is defaultHistory.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(-defaultHistory), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("since=%q: want a duration back from now (15m, 24h), an RFC 3339 time or Unix milliseconds", s)
}

func (a *api) hasCamera(name string) bool {
	for _, c := range a.Backend.Config().Cameras {
		if c.Name == name {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
