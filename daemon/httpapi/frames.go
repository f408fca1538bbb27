package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/siglipd/siglipd/daemon/framestore"
)

// Frames is the frame store, as search sees it: the daemon embeds a query
// with its model and scores stored frames with the model's own sigmoid.
type Frames interface {
	Search(SearchRequest) (SearchResult, error)
	// Frame is a stored frame with the probabilities of its camera's
	// labels as they are configured now (nil for a camera no longer
	// configured).
	Frame(id framestore.ID) (framestore.Stored, map[string]float64, error)
	Thumbnail(id framestore.ID) ([]byte, error)
	DeleteAll() error
	Stats() framestore.Stats
	// Preview runs a label over the camera's stored frames since a time.
	Preview(req LabelRequest, since time.Time) (Preview, error)
}

// SearchRequest is /api/search's query, read and checked.
type SearchRequest struct {
	Text     string         // the query, embedded with the model's prompt template
	Similar  *framestore.ID // instead of Text: frames like this one
	Camera   string         // "" for all
	From, To time.Time      // zero: unbounded
	Limit    int
	Floor    float64
	FloorSet bool // Floor was given; else the daemon's default
}

// SearchResult is what a search found, and the floor it used.
type SearchResult struct {
	framestore.Result
	Floor float64
}

const (
	defaultSearchLimit = 20
	maxSearchLimit     = 200
	// maxQueryLen bounds a query: the text tower reads 64 tokens at most.
	maxQueryLen = 1000
)

// Search is /api/search's body.
type Search struct {
	Query      string   `json:"query,omitempty"`
	Similar    string   `json:"similar,omitempty"`
	Floor      float64  `json:"floor"`
	Searched   int      `json:"searched"`    // stored frames scored
	OtherModel int      `json:"other_model"` // stored frames another model embedded, not searched
	Loading    bool     `json:"loading"`     // earlier runs' frames were still being read
	TookMS     float64  `json:"took_ms"`
	Moments    []Moment `json:"moments"`
}

// Moment is consecutive stored frames of a camera at or above the floor.
type Moment struct {
	Camera string    `json:"camera"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Frames int       `json:"frames"`
	Best   Hit       `json:"best"`
}

// Hit is a stored frame and its score: the probability a label with the
// query's prompt would have had, or, for similar=, the cosine similarity
// of the two frames' embeddings.
type Hit struct {
	ID          string    `json:"id"`
	Camera      string    `json:"camera"`
	Time        time.Time `json:"time"`
	Reason      string    `json:"reason"` // why it was kept: changed, every or event
	Probability *float64  `json:"probability,omitempty"`
	Similarity  *float64  `json:"similarity,omitempty"`
	Thumbnail   string    `json:"thumbnail"`
}

// StoredFrame is /api/frames/{id}'s body.
type StoredFrame struct {
	ID            string             `json:"id"`
	Camera        string             `json:"camera"`
	Time          time.Time          `json:"time"`
	Reason        string             `json:"reason"`
	Crop          [4]int             `json:"crop"` // x, y, width, height in pixels of the frame
	Width         int                `json:"width"`
	Height        int                `json:"height"`
	Thumbnail     string             `json:"thumbnail"`
	Probabilities map[string]float64 `json:"probabilities"` // the camera's labels as configured now
}

// StoreStatus is the frame store in /api/status.
type StoreStatus struct {
	Frames  int        `json:"frames"`
	Bytes   int64      `json:"bytes"`
	Oldest  *time.Time `json:"oldest,omitempty"`
	Loading bool       `json:"loading"`
	Stored  uint64     `json:"stored"`  // frames written since start
	Dropped uint64     `json:"dropped"` // frames not kept: the store's writer was behind
	Failed  uint64     `json:"failed"`  // frames whose write failed (see state.files)
}

func thumbnailURL(id framestore.ID) string { return "/api/frames/" + id.String() + "/thumbnail.jpg" }

func (a *api) handleSearch(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req, err := a.searchRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := a.Frames.Search(req)
	if err != nil {
		frameError(w, err)
		return
	}
	out := Search{Query: req.Text, Floor: res.Floor, Searched: res.Searched, OtherModel: res.Other, Loading: res.Loading, Moments: []Moment{}}
	if req.Similar != nil {
		out.Similar = req.Similar.String()
	}
	for _, m := range res.Moments {
		h := Hit{ID: m.Best.ID.String(), Camera: m.Best.Camera, Time: m.Best.Time, Reason: m.Best.Reason.String(), Thumbnail: thumbnailURL(m.Best.ID)}
		score := m.Best.Score
		if req.Similar != nil {
			h.Similarity = &score
		} else {
			h.Probability = &score
		}
		out.Moments = append(out.Moments, Moment{Camera: m.Camera, Start: m.Start, End: m.End, Frames: m.Frames, Best: h})
	}
	out.TookMS = float64(time.Since(start).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, out)
}

// searchRequest reads /api/search's parameters: q or similar (one of
// them), camera, from and to (RFC 3339) or since (as /api/history's),
// limit and floor.
func (a *api) searchRequest(r *http.Request) (SearchRequest, error) {
	v := r.URL.Query()
	req := SearchRequest{Text: strings.TrimSpace(v.Get("q")), Camera: v.Get("camera"), Limit: defaultSearchLimit}
	if s := v.Get("similar"); s != "" {
		id, err := framestore.ParseID(s)
		if err != nil {
			return req, fmt.Errorf("similar: %w", err)
		}
		req.Similar = &id
	}
	switch {
	case req.Text == "" && req.Similar == nil:
		return req, errors.New("q: give a text to search for (or similar=<frame id>)")
	case req.Text != "" && req.Similar != nil:
		return req, errors.New("give q or similar, not both")
	case len(req.Text) > maxQueryLen:
		return req, fmt.Errorf("q: longer than %d bytes", maxQueryLen)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s, now())
		if err != nil {
			return req, err
		}
		req.From = t
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &req.From}, {"to", &req.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return req, fmt.Errorf("%s=%q: want an RFC 3339 time", p.name, s)
			}
			*p.t = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSearchLimit {
			return req, fmt.Errorf("limit=%q: want 1 to %d", s, maxSearchLimit)
		}
		req.Limit = n
	}
	if s := v.Get("floor"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		lo := 0.0
		if req.Similar != nil {
			lo = -1
		}
		if err != nil || f < lo || f > 1 {
			return req, fmt.Errorf("floor=%q: want a number from %g to 1", s, lo)
		}
		req.Floor, req.FloorSet = f, true
	}
	return req, nil
}

func (a *api) handleFrame(w http.ResponseWriter, r *http.Request) {
	id, err := framestore.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	st, probs, err := a.Frames.Frame(id)
	if err != nil {
		frameError(w, err)
		return
	}
	if probs == nil {
		probs = map[string]float64{}
	}
	writeJSON(w, http.StatusOK, StoredFrame{
		ID: id.String(), Camera: st.Camera, Time: st.Time, Reason: st.Reason.String(),
		Crop:  [4]int{st.Crop.Min.X, st.Crop.Min.Y, st.Crop.Dx(), st.Crop.Dy()},
		Width: st.Width, Height: st.Height, Thumbnail: thumbnailURL(id), Probabilities: probs,
	})
}

func (a *api) handleThumbnail(w http.ResponseWriter, r *http.Request) {
	id, err := framestore.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	jpg, err := a.Frames.Thumbnail(id)
	if err != nil {
		frameError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	// A stored frame never changes; it only goes away.
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	w.Write(jpg)
}

// handleDeleteFrames deletes every stored frame (DELETE /api/frames).
func (a *api) handleDeleteFrames(w http.ResponseWriter, r *http.Request) {
	n := a.Frames.Stats().Frames
	if err := a.Frames.DeleteAll(); err != nil {
		http.Error(w, "deleting the stored frames: "+err.Error(), http.StatusInternalServerError)
		return
	}
	a.Logger.Info("stored frames deleted from the API", "frames", n, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}

func frameError(w http.ResponseWriter, err error) {
	if errors.Is(err, framestore.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func storeStatus(st framestore.Stats) *StoreStatus {
	s := &StoreStatus{Frames: st.Frames, Bytes: st.Bytes, Loading: st.Loading, Stored: st.Stored, Dropped: st.Dropped, Failed: st.Failed}
	if !st.Oldest.IsZero() {
		s.Oldest = &st.Oldest
	}
	return s
}
