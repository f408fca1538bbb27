// Package history keeps each camera × label's probability over time, so a
// user can see how a label's score moves with the scene and choose its
// thresholds from that: every scored frame at full rate for a recent window
// (an hour by default), and per-minute minimum, maximum and mean for longer
// (seven days), with the events of the same span. It is bounded in memory
// (per series: the recent window's points, one bucket a minute, the events),
// and saved to a file so that restarts keep it.
//
// Contract: a Store is safe for concurrent use. The daemon's rules loop
// calls Add, Event and ClockJumped; HTTP handlers call Query; Save is called
// by the daemon, periodically and at shutdown. Nothing blocks on I/O but
// Save and Load.
//
// Times are labels of the daemon's wall clock, which may be stepped (an
// edge box without a real-time clock syncing NTP). The daemon labels a
// run's data on a timeline that only grows, and when the wall clock jumps it
// calls ClockJumped, which moves what this run recorded by the jump: those
// labels were made with the clock the jump corrected. What Load read keeps
// its labels (the last run's clock is not known to have been wrong). So a
// forward jump does not age this run's data out at once, and a backward one
// leaves it in order.
package history

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// Options bound a Store; zero values take the defaults in brackets.
type Options struct {
	Recent time.Duration // full-rate window [1h]
	Bucket time.Duration // width of a downsampled bucket [1m]
	Keep   time.Duration // how far back buckets and events go [168h]
	// MaxRecent bounds the points of one series in the recent window
	// [3600·60: an hour at the largest fps a camera may have].
	MaxRecent int
}

func (o *Options) fill() {
	if o.Recent <= 0 {
		o.Recent = time.Hour
	}
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	if o.Keep <= 0 {
		o.Keep = 7 * 24 * time.Hour
	}
	if o.MaxRecent <= 0 {
		o.MaxRecent = 3600 * 60
	}
}

// Point is one scored frame's probability. The time is in Unix
// milliseconds: an hour of a few cameras' labels at full rate is a lot of
// points, and time.Time would double their size.
type Point struct {
	Ms int64
	P  float32

	live bool // added by this run (not loaded): ClockJumped moves it; in the padding, so a Point stays 16 bytes
}

// Time is the point's time.
func (p Point) Time() time.Time { return time.UnixMilli(p.Ms) }

// Bucket summarizes the points of one Bucket-wide span starting at T.
type Bucket struct {
	T              time.Time
	Min, Max, Mean float32
	N              int

	live bool // made by this run (see Point)
}

// add counts p into the bucket.
func (b *Bucket) add(p float32) {
	if b.N == 0 {
		b.Min, b.Max, b.Mean, b.N = p, p, p, 1
		return
	}
	b.Min, b.Max = min(b.Min, p), max(b.Max, p)
	b.Mean += (p - b.Mean) / float32(b.N+1)
	b.N++
}

// merge counts the points of o into the bucket.
func (b *Bucket) merge(o Bucket) {
	n := b.N + o.N
	b.Min, b.Max = min(b.Min, o.Min), max(b.Max, o.Max)
	b.Mean = (b.Mean*float32(b.N) + o.Mean*float32(o.N)) / float32(n)
	b.N = n
}

// Span is one event: from its start to its end (nil while it lasts).
type Span struct {
	ID       string
	Start    time.Time
	End      *time.Time
	TopScore float64

	live, endLive bool // Start, End recorded by this run (see Point)
}

// Series is the stored history of one camera × label.
type Series struct {
	Recent  []Point  // oldest first
	Buckets []Bucket // closed buckets, oldest first
	Open    Bucket   // the bucket being filled (N == 0: none)
	Events  []Span   // oldest first
}

type key struct{ Camera, Label string }

// Store is the history of every camera × label.
type Store struct {
	opts  Options
	mu    sync.RWMutex
	m     map[key]*Series
	jumps int // ClockJumped calls
}

// New returns an empty Store.
func New(opts Options) *Store {
	opts.fill()
	return &Store{opts: opts, m: map[key]*Series{}}
}

func (s *Store) series(camera, label string) *Series {
	k := key{camera, label}
	sr := s.m[k]
	if sr == nil {
		sr = &Series{}
		s.m[k] = sr
	}
	return sr
}

// Add records one frame's probabilities (by label) at time t.
func (s *Store) Add(camera string, t time.Time, probs map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := t.UnixMilli()
	for label, p := range probs {
		sr := s.series(camera, label)
		// This run's labels only grow, so points labelled at or after t
		// are the last run's: its clock was ahead of this one (a box that
		// booted with an old time). They go; their minutes' buckets stay.
		for n := len(sr.Recent); n > 0 && !sr.Recent[n-1].live && sr.Recent[n-1].Ms >= ms; n-- {
			sr.Recent = sr.Recent[:n-1]
		}
		sr.Recent = append(sr.Recent, Point{Ms: ms, P: float32(p), live: true})
		s.bucket(sr, t, float32(p))
		s.trim(sr, t)
	}
}

// bucket adds p to the bucket of t, closing the open one when t is past it.
func (s *Store) bucket(sr *Series, t time.Time, p float32) {
	start := t.Truncate(s.opts.Bucket)
	if sr.Open.N > 0 && !start.Equal(sr.Open.T) {
		if start.Before(sr.Open.T) {
			// Before the open bucket: the open one is the last run's, made
			// with a clock ahead of this one. The point goes into the closed
			// bucket of its minute, kept in order.
			i, found := slices.BinarySearchFunc(sr.Buckets, start, func(b Bucket, t time.Time) int { return b.T.Compare(t) })
			if !found {
				sr.Buckets = slices.Insert(sr.Buckets, i, Bucket{T: start, live: true})
			}
			sr.Buckets[i].add(p)
			return
		}
		sr.Buckets = append(sr.Buckets, sr.Open)
		sr.Open = Bucket{}
	}
	if sr.Open.N == 0 {
		sr.Open = Bucket{T: start, live: true}
	}
	sr.Open.add(p)
}

// trim drops what is older than the windows, as of now.
func (s *Store) trim(sr *Series, now time.Time) {
	i := pointsFrom(sr.Recent, now.Add(-s.opts.Recent))
	i = max(i, len(sr.Recent)-s.opts.MaxRecent)
	// Copy only once a good number of points are stale, so a point added
	// costs O(1) on average; Query skips the stale ones meanwhile.
	if i > 0 && (i >= len(sr.Recent)/4 || i >= 1024) {
		sr.Recent = append(sr.Recent[:0:0], sr.Recent[i:]...)
	}
	old := now.Add(-s.opts.Keep)
	j, _ := slices.BinarySearchFunc(sr.Buckets, old, func(b Bucket, t time.Time) int { return b.T.Compare(t) })
	if j > 0 {
		sr.Buckets = append(sr.Buckets[:0:0], sr.Buckets[j:]...)
	}
	k := 0
	for k < len(sr.Events) && sr.Events[k].End != nil && sr.Events[k].End.Before(old) {
		k++
	}
	if k > 0 {
		sr.Events = append(sr.Events[:0:0], sr.Events[k:]...)
	}
}

// Event records an event's start, or its end.
func (s *Store) Event(ev rules.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.series(ev.Camera, ev.Label)
	for i := len(sr.Events) - 1; i >= 0; i-- {
		if sr.Events[i].ID == ev.ID {
			sp := &sr.Events[i]
			sp.TopScore = max(sp.TopScore, ev.TopScore)
			if ev.Type == rules.TypeEnd {
				end := ev.StartTime
				if ev.EndTime != nil {
					end = *ev.EndTime
				}
				sp.End, sp.endLive = &end, true
			}
			return
		}
	}
	if ev.Type == rules.TypeEnd {
		return // the end of an event this store never saw start
	}
	sr.Events = append(sr.Events, Span{ID: ev.ID, Start: ev.StartTime, TopScore: ev.TopScore, live: true})
}

// ClockJumped moves everything this run recorded (Add, Event; not what Load
// read) by d, the wall clock's jump: its labels were made with the clock the
// jump corrected. Points, buckets and events stay in order: a bucket moved
// onto a minute the last run left is merged with it, and one moved by a
// part of a minute goes to the minute its start falls in (buckets are a
// minute's summary; the points keep their exact times).
func (s *Store) ClockJumped(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jumps++
	for _, sr := range s.m {
		s.relabel(sr, d)
	}
}

func (s *Store) relabel(sr *Series, d time.Duration) {
	for i := range sr.Recent {
		if sr.Recent[i].live {
			sr.Recent[i].Ms += d.Milliseconds()
		}
	}
	byMs := func(a, b Point) int { return cmp.Compare(a.Ms, b.Ms) }
	if !slices.IsSortedFunc(sr.Recent, byMs) {
		slices.SortStableFunc(sr.Recent, byMs)
	}

	all := sr.Buckets
	if sr.Open.N > 0 {
		all = append(all, sr.Open)
	}
	for i := range all {
		if all[i].live {
			all[i].T = all[i].T.Add(d).Truncate(s.opts.Bucket)
		}
	}
	slices.SortStableFunc(all, func(a, b Bucket) int { return a.T.Compare(b.T) })
	merged := all[:0]
	for _, b := range all {
		if n := len(merged); n > 0 && merged[n-1].T.Equal(b.T) {
			merged[n-1].merge(b)
			continue
		}
		merged = append(merged, b)
	}
	sr.Buckets, sr.Open = merged, Bucket{}
	if n := len(merged); n > 0 {
		// The newest bucket is the one being filled.
		sr.Buckets, sr.Open = merged[:n-1], merged[n-1]
	}

	for i := range sr.Events {
		e := &sr.Events[i]
		if e.live {
			e.Start = e.Start.Add(d)
		}
		if e.endLive && e.End != nil {
			end := e.End.Add(d)
			e.End = &end
		}
	}
	slices.SortStableFunc(sr.Events, func(a, b Span) int { return a.Start.Compare(b.Start) })
}

// Result is what Query returns: the full-rate points since the time asked,
// the buckets before the first of them, and the events overlapping the span.
type Result struct {
	Points  []Point
	Buckets []Bucket
	Events  []Span
	// ClockJumps counts the wall-clock jumps this run's history was moved
	// by (ClockJumped): a client that keeps points it fetched earlier
	// fetches them again when it changes.
	ClockJumps int
}

// Query returns camera × label's history since the given time.
func (s *Store) Query(camera, label string, since time.Time) Result {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sr := s.m[key{camera, label}]
	if sr == nil {
		return Result{}
	}
	r := Result{ClockJumps: s.jumps}
	from := since
	if n := len(sr.Recent); n > 0 {
		from = maxTime(from, sr.Recent[n-1].Time().Add(-s.opts.Recent)) // stale points trim has not copied out yet
	}
	r.Points = slices.Clone(sr.Recent[pointsFrom(sr.Recent, from):])
	for i := range r.Points {
		r.Points[i].live = false // the caller's copy says nothing of where it came from
	}
	firstPoint := time.Time{}
	if len(r.Points) > 0 {
		firstPoint = r.Points[0].Time()
	}
	for _, b := range append(slices.Clone(sr.Buckets), sr.Open) {
		end := b.T.Add(s.opts.Bucket)
		if b.N == 0 || end.Before(since) || (!firstPoint.IsZero() && !b.T.Before(firstPoint.Truncate(s.opts.Bucket))) {
			continue // empty, too old, or covered by the full-rate points
		}
		b.live = false
		r.Buckets = append(r.Buckets, b)
	}
	for _, e := range sr.Events {
		if e.End == nil || !e.End.Before(since) {
			e.live, e.endLive = false, false
			r.Events = append(r.Events, e)
		}
	}
	return r
}

// pointsFrom is the index of the first point at or after t.
func pointsFrom(ps []Point, t time.Time) int {
	ms := t.UnixMilli()
	i, _ := slices.BinarySearchFunc(ps, ms, func(p Point, ms int64) int {
		switch {
		case p.Ms < ms:
			return -1
		case p.Ms > ms:
			return 1
		}
		return 0
	})
	return i
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fileVersion is the layout of the saved file; another is not loaded.
const fileVersion = 1

type saved struct {
	Version int
	Series  map[key]*Series
}

// Save writes the store to path (through a temporary file and a rename).
func (s *Store) Save(path string) error {
	s.mu.RLock()
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(saved{Version: fileVersion, Series: s.m})
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := kit.WriteFile(path, buf.Bytes(), 0o644, false); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Load reads a file Save wrote, replacing the store's contents and dropping
// what is older than the windows as of now. A missing file is no error.
func (s *Store) Load(path string, now time.Time) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	var sv saved
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&sv); err != nil {
		return fmt.Errorf("history %s: unreadable: %w", path, err)
	}
	if sv.Version != fileVersion {
		return fmt.Errorf("history %s: version %d, want %d", path, sv.Version, fileVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = map[key]*Series{}
	for k, sr := range sv.Series {
		if sr == nil {
			continue
		}
		s.trim(sr, now)
		s.m[k] = sr
	}
	return nil
}
