package daemon

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/siglipd/siglipd/configs"
)

//go:embed web/index.html
var indexHTML []byte

// startHTTP serves the status endpoints and the live page on http.listen
// ("" disables it). It returns once the listener is bound, so a port in use
// is a startup error, not a log line later.
func (d *daemon) startHTTP(cfg *configs.Config) (*http.Server, error) {
	if cfg.HTTP.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/status", d.handleStatus)
	mux.HandleFunc("GET /api/cameras/{name}/snapshot.jpg", d.handleSnapshot)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	srv := &http.Server{
		Handler:           newHostGuard(cfg.HTTP.Listen, cfg.HTTP.AllowedHosts, d.authenticate(cfg.HTTP.Token.Reveal(), mux)),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()
	d.log.Info("http server listening", "addr", ln.Addr().String())
	if d.opts.HTTPAddr != nil {
		d.opts.HTTPAddr <- ln.Addr().String()
	}
	return srv, nil
}

// authenticate requires the bearer token (or ?token= for the page's images)
// on everything but /healthz, when a token is configured.
func (d *daemon) authenticate(token string, next http.Handler) http.Handler {
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

// readyStatus is /readyz's body.
type readyStatus struct {
	Ready   bool              `json:"ready"`
	Model   bool              `json:"model"`
	Sink    bool              `json:"sink"`
	Reason  string            `json:"reason,omitempty"`
	Cameras map[string]string `json:"cameras"`
}

// handleReady: ready means the model is loaded and events can be delivered
// (the broker is connected). Cameras are listed but do not decide: one dead
// camera should not make an orchestrator restart a daemon serving the rest.
func (d *daemon) handleReady(w http.ResponseWriter, r *http.Request) {
	st := readyStatus{Model: d.model != nil, Cameras: map[string]string{}}
	sink := d.sink.Status()
	st.Sink = sink.Connected
	for _, c := range d.cameraStatuses() {
		st.Cameras[c.Name] = string(c.State)
	}
	st.Ready = st.Model && st.Sink
	if !st.Sink {
		st.Reason = "not connected to the broker"
		if sink.LastError != "" {
			st.Reason += ": " + sink.LastError
		}
	}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

// apiStatus is /api/status: everything the live page shows.
type apiStatus struct {
	Version string       `json:"version"`
	Uptime  string       `json:"uptime"`
	Model   apiModel     `json:"model"`
	Sink    apiSink      `json:"sink"`
	Cameras []apiCamera  `json:"cameras"`
	Batch   apiBatchConf `json:"batch"`
}

type apiModel struct {
	Dir    string `json:"dir"`
	Device string `json:"device"`
	Input  string `json:"input"`
}

type apiSink struct {
	Kind        string `json:"kind"`
	Connected   bool   `json:"connected"`
	OutboxDepth int    `json:"outbox_depth"`
	LastError   string `json:"last_error,omitempty"`
}

type apiBatchConf struct {
	Size    int    `json:"size"`
	MaxWait string `json:"max_wait"`
}

type apiCamera struct {
	Name       string     `json:"name"`
	URL        string     `json:"url"`
	State      string     `json:"state"`
	LastError  string     `json:"last_error,omitempty"`
	LastFrame  *time.Time `json:"last_frame"`
	ScoredAt   *time.Time `json:"scored_at"`
	FramesRead uint64     `json:"frames_read"`
	FramesOut  uint64     `json:"frames_sampled"`
	FPSIn      float64    `json:"fps_in"`
	FPSOut     float64    `json:"fps_out"`
	Dropped    uint64     `json:"dropped"`
	Reconnects uint64     `json:"reconnects"`
	Width      int        `json:"width"`
	Height     int        `json:"height"`
	Labels     []apiLabel `json:"labels"`
}

type apiLabel struct {
	Name         string   `json:"name"`
	Probability  *float64 `json:"probability"` // null before the first scored frame
	Threshold    float64  `json:"threshold"`
	OffThreshold float64  `json:"off_threshold"`
	On           bool     `json:"on"`
	TopScore     float64  `json:"top_score,omitempty"`
	Since        *string  `json:"since,omitempty"`
}

func (d *daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	info := d.model.Info()
	sink := d.sink.Status()
	st := apiStatus{
		Version: VersionString(),
		Uptime:  time.Since(d.started).Round(time.Second).String(),
		Model:   apiModel{Dir: info.Dir, Device: info.Device, Input: fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight)},
		Sink:    apiSink{Kind: cfg.Sink, Connected: sink.Connected, OutboxDepth: sink.OutboxDepth, LastError: sink.LastError},
		Batch:   apiBatchConf{Size: cfg.Inference.BatchSize, MaxWait: cfg.Inference.MaxBatchWait.String()},
	}
	statuses := map[string]apiCamera{}
	for _, s := range d.cameraStatuses() {
		c := apiCamera{Name: s.Name, URL: s.URL, State: string(s.State), LastError: s.LastError,
			FramesRead: s.FramesRead, FramesOut: s.FramesOut, FPSIn: s.FPSIn, FPSOut: s.FPSOut, Dropped: d.latest.Drops(s.Name), Reconnects: s.Reconnects, Width: s.Width, Height: s.Height}
		if !s.LastFrame.IsZero() {
			t := s.LastFrame
			c.LastFrame = &t
		}
		statuses[s.Name] = c
	}
	for _, cc := range cfg.Cameras {
		c, ok := statuses[cc.Name]
		if !ok {
			c = apiCamera{Name: cc.Name, URL: cc.URL.String(), State: "stopped"}
		}
		probs, scoredAt, states := d.live.scores(cc.Name)
		if !scoredAt.IsZero() {
			c.ScoredAt = &scoredAt
		}
		for _, l := range cc.Labels {
			al := apiLabel{Name: l.Name, Threshold: l.Threshold, OffThreshold: l.EffectiveOffThreshold()}
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

func (d *daemon) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !d.hasCamera(name) {
		http.Error(w, fmt.Sprintf("no camera %q", name), http.StatusNotFound)
		return
	}
	jpeg, at, err := d.live.snapshot(name)
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

func (d *daemon) hasCamera(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cfg.Cameras {
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
