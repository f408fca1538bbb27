// Package framestore keeps what the cameras saw: for each kept frame its
// camera, time, crop, a small JPEG thumbnail and the SigLIP image embedding
// the model computed for it, so that the past can be searched by text
// (search.go) and a label can be tried on it before it goes live.
//
// Storage is a folder of numbered segments (segment.go), each an
// append-only file of embeddings and one of thumbnails. Retention deletes
// whole segments, oldest first, by age (Options.Keep) and by size
// (Options.MaxSize; a segment is at most segmentShare of it, so the folder
// never exceeds MaxSize by more than that). In memory each frame costs its
// embedding as int8 with a scale (for the coarse scan) and a few words of
// metadata; the float32 embedding on disk is read back for exact scores.
//
// Contract: the daemon owns the Store: Open starts it, Close stops it. Add
// never blocks: it queues the frame for the store's writer goroutine, or
// drops it (counted) when the queue is full, so the store's writes never
// slow scoring. The writer encodes the thumbnail, writes, fsyncs every
// syncEvery and applies retention; a failed write (full or read-only disk)
// is reported through Options.File, and the frame is dropped, not retried:
// frames are a record of the past, events are what must not be lost.
// Segments written before Open are read by a loader goroutine; until it is
// done, searches see only what it has read (Stats().Loading). Every other
// method is safe for concurrent use, holds the store's lock only to copy
// index slices, never across I/O, and reads files itself.
package framestore

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siglipd/siglipd/daemon/framestore/vec"
	"github.com/siglipd/siglipd/internal/kit"
)

// Reason is why a frame was kept.
type Reason uint8

const (
	Changed Reason = iota // the change gate saw the scene change
	Every                 // store.every passed since the camera's last kept frame
	Event                 // one of the camera's events was open
)

func (r Reason) String() string {
	switch r {
	case Changed:
		return "changed"
	case Every:
		return "every"
	case Event:
		return "event"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ID names a stored frame: its segment's number and its record's offset.
// IDs grow with the time frames were stored.
type ID uint64

func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// ParseID reads an ID as String writes it.
func ParseID(s string) (ID, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("frame id %q: not a number", s)
	}
	return ID(n), nil
}

func makeID(seq uint32, off uint32) ID { return ID(uint64(seq)<<32 | uint64(off)) }
func (id ID) seq() uint32              { return uint32(id >> 32) }
func (id ID) off() uint32              { return uint32(id) }

// ErrNotFound: no stored frame has this ID (never stored, or retention
// deleted it).
var ErrNotFound = errors.New("no such frame")

// Picture is a frame's picture, made a JPEG on the writer goroutine (the
// encoding must not cost the caller's time). The store calls Close once,
// after JPEG or instead of it.
type Picture interface {
	JPEG() ([]byte, error)
	Close()
}

// Item is a frame to keep.
type Item struct {
	Camera    string
	Time      time.Time // wall time, as the rest of siglipd labels frames
	Reason    Reason
	Crop      image.Rectangle // the region scored, in pixels of the frame
	Width     int             // frame size
	Height    int
	Embedding []float32 // the model's unit-length image embedding
	Picture   Picture   // the thumbnail to be; nil keeps none
}

// Frame is a stored frame's metadata.
type Frame struct {
	ID     ID
	Camera string
	Time   time.Time
	Reason Reason
}

// Stored is a frame with what only its record holds.
type Stored struct {
	Frame
	Crop      image.Rectangle
	Width     int
	Height    int
	Embedding []float32
}

// Options configure a Store.
type Options struct {
	Dir     string        // the store's folder; made if missing
	Keep    time.Duration // frames older than this are deleted
	MaxSize int64         // bytes the folder may hold
	// ModelKey names the model the embeddings come from: frames a
	// different model embedded are kept until retention deletes them, but
	// not searched (their embeddings mean nothing to this model's text
	// tower).
	ModelKey string
	Dim      int // embedding length
	// File reports failed writes (the state folder's "frames"); nil: none.
	File *kit.StateFile
	Log  *slog.Logger
	// Now is the wall time retention compares with; nil: time.Now.
	Now func() time.Time
	// Workers is how many goroutines a search scans with; 0: 2.
	Workers int
}

const (
	// queueLen frames wait for the writer at most; more are dropped. The
	// writer's worst case is an fsync on a slow SD card.
	queueLen = 256
	// syncEvery bounds what a power cut loses; a SIGKILL loses only the
	// queue, as every record is one write(2).
	syncEvery = 2 * time.Second
	// retainEvery is how often age retention runs besides each roll.
	retainEvery = time.Minute
	// segmentShare: a segment is at most MaxSize/segmentShare bytes, so
	// the folder overshoots MaxSize by at most 1/segmentShare while the
	// newest segment fills.
	segmentShare = 50
	// segmentSpan: a segment ends after this long, so age retention
	// deletes at most this much too late.
	segmentSpan = time.Hour
	minSegment  = 256 << 10
	maxSegment  = 64 << 20
)

// segment is one segment's index. frames and codes only grow (and only
// the writer appends, to the active segment); readers take their length
// under the store's lock and read that prefix without it.
type segment struct {
	seq        uint32
	dim        int
	searchable bool // its model and dim are the store's
	frames     []meta
	codes      []int8 // frames[i]'s int8 embedding at codes[i*dim:]
	embSize    int64  // bytes of the .emb file that hold whole records
	jpgSize    int64
	first      time.Time // writer's time of its first frame, for segmentSpan
}

// meta is a frame in memory: 24 bytes plus its int8 embedding.
type meta struct {
	time   int64 // Unix ns
	off    uint32
	scale  float32 // of codes
	cam    uint16
	reason Reason
}

// Store is an open frame store.
type Store struct {
	opts     Options
	log      *slog.Logger
	queue    chan Item
	deletes  chan chan error
	closing  chan struct{}
	done     chan struct{}
	loadDone chan struct{}

	mu      sync.RWMutex
	segs    []*segment // ascending seq
	cameras []string   // meta.cam indexes it
	camIdx  map[string]uint16
	loading bool

	// the writer goroutine's
	active   *segment
	emb, jpg *os.File
	nextSeq  uint32
	dirty    bool

	stored, dropped, failed atomic.Uint64
	corrupt                 atomic.Uint64 // segments moved aside
}

// Open opens (or makes) the store in opts.Dir and starts its writer and
// its loader. A folder that is not a folder is moved aside; a segment that
// is not what siglipd wrote is moved to Dir/corrupt; both are one error
// line. Open fails only when the folder cannot be made at all.
func Open(opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Dim <= 0 || opts.Dim > 1<<15 {
		return nil, fmt.Errorf("frame store: embedding length %d", opts.Dim)
	}
	if fi, err := os.Stat(opts.Dir); err == nil && !fi.IsDir() {
		aside := fmt.Sprintf("%s.corrupt-%s", opts.Dir, opts.Now().UTC().Format("20060102T150405"))
		if err := os.Rename(opts.Dir, aside); err != nil {
			return nil, fmt.Errorf("frame store %s: not a folder, and cannot be moved aside: %w", opts.Dir, err)
		}
		opts.Log.Error("frame store: not a folder; moved aside, starting a new store", "path", opts.Dir, "moved_to", aside)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("frame store: %w", err)
	}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("frame store: %w", err)
	}
	s := &Store{
		opts: opts, log: opts.Log, queue: make(chan Item, queueLen), deletes: make(chan chan error),
		closing: make(chan struct{}), done: make(chan struct{}), loadDone: make(chan struct{}),
		camIdx: map[string]uint16{}, loading: true, nextSeq: 1,
	}
	var old []uint32
	for _, e := range entries {
		if seq, ok := parseSeq(e.Name()); ok {
			old = append(old, seq)
			s.nextSeq = max(s.nextSeq, seq+1)
		}
	}
	slices.Sort(old)
	go s.load(old)
	go s.write()
	return s, nil
}

// Close stops the writer after it wrote what was queued, and waits for
// the loader.
func (s *Store) Close() error {
	close(s.closing)
	<-s.done
	<-s.loadDone
	return nil
}

// Add queues a frame for the writer; false: the queue was full and the
// frame was dropped (its Picture closed). It never blocks.
func (s *Store) Add(it Item) bool {
	if len(it.Embedding) != s.opts.Dim || !finite(it.Embedding) {
		s.dropped.Add(1)
		if it.Picture != nil {
			it.Picture.Close()
		}
		return false
	}
	select {
	case <-s.closing:
	case s.queue <- it:
		return true
	default:
	}
	s.dropped.Add(1)
	if it.Picture != nil {
		it.Picture.Close()
	}
	return false
}

// Stats is what the store holds and has done since Open.
type Stats struct {
	Frames     int       // stored frames
	Searchable int       // of them, embedded by this model
	Bytes      int64     // size of the segments
	Oldest     time.Time // zero when empty
	Stored     uint64    // frames written since Open
	Dropped    uint64    // frames not queued: the writer was behind
	Failed     uint64    // frames whose write failed
	Corrupt    uint64    // segments moved aside since Open
	Loading    bool      // the segments of earlier runs are still being read
}

// Stats reports the store's counts.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Loading: s.loading, Stored: s.stored.Load(), Dropped: s.dropped.Load(), Failed: s.failed.Load(), Corrupt: s.corrupt.Load()}
	for _, g := range s.segs {
		st.Frames += len(g.frames)
		if g.searchable {
			st.Searchable += len(g.frames)
		}
		st.Bytes += g.embSize + g.jpgSize
		if st.Oldest.IsZero() && len(g.frames) > 0 {
			st.Oldest = time.Unix(0, g.frames[0].time)
		}
	}
	return st
}

// camera returns the index of a camera name, adding it. Call with mu held.
func (s *Store) cameraLocked(name string) uint16 {
	if i, ok := s.camIdx[name]; ok {
		return i
	}
	i := uint16(len(s.cameras))
	s.cameras = append(s.cameras, name)
	s.camIdx[name] = i
	return i
}

// insertLocked puts a segment into segs by number.
func (s *Store) insertLocked(g *segment) {
	i, _ := slices.BinarySearchFunc(s.segs, g.seq, func(a *segment, seq uint32) int { return cmp.Compare(a.seq, seq) })
	s.segs = slices.Insert(s.segs, i, g)
}

// load reads the segments earlier runs wrote, oldest first.
func (s *Store) load(seqs []uint32) {
	defer close(s.loadDone)
	var bad []string
	lost := 0
	for _, seq := range seqs {
		select {
		case <-s.closing:
			return
		default:
		}
		g, err := s.loadSegment(seq)
		if errors.Is(err, errCorrupt) {
			bad = append(bad, fmt.Sprintf("%s: %v", segName(seq), err))
			if g != nil {
				lost += len(g.frames)
			}
			s.moveAside(seq)
			continue
		}
		if err != nil {
			s.log.Warn("frame store: segment not read", "segment", embPath(s.opts.Dir, seq), "err", err)
			continue
		}
		s.mu.Lock()
		s.insertLocked(g)
		s.mu.Unlock()
	}
	if len(bad) > 0 {
		s.corrupt.Add(uint64(len(bad)))
		s.log.Error("frame store: segments that are not what siglipd wrote were moved aside; the store goes on without them",
			"segments", len(bad), "moved_to", filepath.Join(s.opts.Dir, "corrupt"), "first", bad[0])
	}
	s.mu.Lock()
	s.loading = false
	s.mu.Unlock()
}

// loadSegment indexes one segment. A torn last record is cut off. On
// errCorrupt the partial index is returned for its count.
func (s *Store) loadSegment(seq uint32) (*segment, error) {
	jpgInfo, err := os.Stat(jpgPath(s.opts.Dir, seq))
	if err != nil {
		return nil, fmt.Errorf("thumbnails: %w", errCorrupt)
	}
	g := &segment{seq: seq, jpgSize: jpgInfo.Size()}
	// Sized from the file: a record is its embedding and at least
	// minOverhead bytes, so est is never short (append would then grow
	// the slices by a quarter) and over by the camera names' bytes only.
	const minOverhead = 58
	est := 0
	if fi, err := os.Stat(embPath(s.opts.Dir, seq)); err == nil {
		est = int(fi.Size()/int64(minOverhead+4*s.opts.Dim)) + 1
	}
	local := make([]meta, 0, est)
	names := make([]string, 0, est)
	g.codes = make([]int8, 0, est*s.opts.Dim)
	scratch := make([]float32, 0, s.opts.Dim)
	cut := false        // a record whose thumbnail was not all written, and those after it
	keepEnd := int64(0) // end of the last record kept
	key, dim, end, torn, err := scanSegment(embPath(s.opts.Dir, seq), func(off int64, r *record) {
		if cut || int64(r.thumbOff)+int64(r.thumbLen) > g.jpgSize {
			cut = true
			return
		}
		scratch = decodeEmbedding(scratch, r.embedding)
		codes := make([]int8, len(scratch))
		scale := vec.Quantize(codes, scratch)
		g.codes = append(g.codes, codes...)
		names = append(names, r.camera)
		local = append(local, meta{time: r.time, off: uint32(off), scale: scale, reason: r.reason})
		keepEnd = off + int64(r.embeddingA+len(r.embedding))
	})
	if err != nil {
		return g, err
	}
	torn = torn || cut
	g.dim = dim
	g.searchable = key == s.opts.ModelKey && dim == s.opts.Dim
	if cut {
		end = keepEnd
		if len(local) == 0 {
			end = int64(len(header(key, dim)))
		}
	}
	if torn {
		// Cut the .emb file after the last record kept: the next Open
		// must not see a torn record in the middle of a segment.
		if err := os.Truncate(embPath(s.opts.Dir, seq), end); err != nil {
			s.log.Warn("frame store: torn last record not cut off", "segment", segName(seq), "err", err)
		}
	}
	g.embSize = end
	s.mu.Lock()
	for i := range local {
		local[i].cam = s.cameraLocked(names[i])
	}
	s.mu.Unlock()
	g.frames = local
	return g, nil
}

// moveAside moves a corrupt segment's files to Dir/corrupt, where they
// stay for a person to look at (and delete).
func (s *Store) moveAside(seq uint32) {
	dst := filepath.Join(s.opts.Dir, "corrupt")
	if err := os.MkdirAll(dst, 0o700); err == nil {
		for _, p := range []string{embPath(s.opts.Dir, seq), jpgPath(s.opts.Dir, seq)} {
			if os.Rename(p, filepath.Join(dst, filepath.Base(p))) == nil {
				continue
			}
			os.Remove(p)
		}
	}
}

// write is the writer goroutine: it owns the active segment's files.
func (s *Store) write() {
	defer close(s.done)
	flush := time.NewTicker(syncEvery)
	defer flush.Stop()
	retain := time.NewTicker(retainEvery)
	defer retain.Stop()
	for {
		select {
		case it := <-s.queue:
			s.writeItem(it)
		case done := <-s.deletes:
			done <- s.deleteAll()
		case <-flush.C:
			s.sync()
		case <-retain.C:
			s.retain()
		case <-s.closing:
			for {
				select {
				case it := <-s.queue:
					s.writeItem(it)
					continue
				default:
				}
				break
			}
			s.sync()
			s.closeActive()
			return
		}
	}
}

func (s *Store) segmentLimit() int64 {
	return min(max(s.opts.MaxSize/segmentShare, minSegment), maxSegment)
}

func (s *Store) writeItem(it Item) {
	var thumb []byte
	if it.Picture != nil {
		var err error
		thumb, err = it.Picture.JPEG()
		it.Picture.Close()
		if err != nil {
			s.failed.Add(1)
			s.log.Debug("frame store: thumbnail not encoded", "camera", it.Camera, "err", err)
			return
		}
	}
	if s.active != nil && (s.active.embSize+s.active.jpgSize >= s.segmentLimit() || s.opts.Now().Sub(s.active.first) >= segmentSpan) {
		s.closeActive()
		s.retain()
	}
	if s.active == nil {
		if err := s.newActive(); err != nil {
			s.failed.Add(1)
			s.wrote(err)
			return
		}
	}
	g := s.active
	r := &record{
		reason: it.Reason, camera: it.Camera, time: unixNano(it.Time), crop: it.Crop, width: it.Width, height: it.Height,
		thumbOff: uint32(g.jpgSize), thumbLen: uint32(len(thumb)), thumbCRC: crc32.Checksum(thumb, castagnoli),
		embedding: encodeEmbedding(it.Embedding),
	}
	if len(thumb) > 0 {
		if _, err := s.jpg.WriteAt(thumb, g.jpgSize); err != nil {
			s.writeFailed(err)
			return
		}
	}
	buf := appendRecord(nil, r)
	if _, err := s.emb.WriteAt(buf, g.embSize); err != nil {
		s.writeFailed(err)
		return
	}
	s.wrote(nil)
	s.dirty = true
	codes := make([]int8, len(it.Embedding))
	scale := vec.Quantize(codes, it.Embedding)
	s.mu.Lock()
	g.frames = append(g.frames, meta{time: r.time, off: uint32(g.embSize), scale: scale, cam: s.cameraLocked(it.Camera), reason: it.Reason})
	g.codes = append(g.codes, codes...)
	g.embSize += int64(len(buf))
	g.jpgSize += int64(len(thumb))
	s.mu.Unlock()
	s.stored.Add(1)
}

// writeFailed handles a write that failed part way: what it wrote past
// the last whole record is cut off, or, if that fails too, the segment is
// closed, so that the partial record is a torn tail a later Open cuts.
func (s *Store) writeFailed(err error) {
	s.failed.Add(1)
	s.wrote(err)
	g := s.active
	if s.emb.Truncate(g.embSize) != nil || s.jpg.Truncate(g.jpgSize) != nil {
		s.closeActive()
	}
}

func (s *Store) wrote(err error) {
	if s.opts.File != nil {
		s.opts.File.Wrote(err)
	} else if err != nil {
		s.log.Warn("frame store: write failed", "err", err)
	}
}

func (s *Store) newActive() error {
	seq := s.nextSeq
	emb, err := os.OpenFile(embPath(s.opts.Dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := header(s.opts.ModelKey, s.opts.Dim)
	if _, err := emb.Write(h); err != nil {
		emb.Close()
		os.Remove(embPath(s.opts.Dir, seq))
		return err
	}
	jpg, err := os.OpenFile(jpgPath(s.opts.Dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		emb.Close()
		os.Remove(embPath(s.opts.Dir, seq))
		return err
	}
	s.nextSeq++
	s.emb, s.jpg = emb, jpg
	s.active = &segment{seq: seq, dim: s.opts.Dim, searchable: true, embSize: int64(len(h)), first: s.opts.Now()}
	s.mu.Lock()
	s.insertLocked(s.active)
	s.mu.Unlock()
	return nil
}

func (s *Store) sync() {
	if !s.dirty || s.active == nil {
		return
	}
	s.dirty = false
	err := s.emb.Sync()
	if err == nil {
		err = s.jpg.Sync()
	}
	if err != nil {
		s.wrote(err)
	}
}

func (s *Store) closeActive() {
	if s.active == nil {
		return
	}
	s.sync()
	s.emb.Close()
	s.jpg.Close()
	s.emb, s.jpg, s.active = nil, nil, nil
}

// retain deletes the segments past Keep, then the oldest ones while the
// store holds more than MaxSize. The active segment is never deleted.
// It waits for the loader: sizes of unread segments are not known.
func (s *Store) retain() {
	select {
	case <-s.loadDone:
	default:
		return
	}
	cutoff := s.opts.Now().Add(-s.opts.Keep).UnixNano()
	s.mu.Lock()
	var total int64
	for _, g := range s.segs {
		total += g.embSize + g.jpgSize
	}
	var gone []*segment
	for len(s.segs) > 0 && s.segs[0] != s.active {
		g := s.segs[0]
		old := s.opts.Keep > 0 && (len(g.frames) == 0 || g.frames[len(g.frames)-1].time < cutoff)
		if !old && total <= s.opts.MaxSize {
			break
		}
		total -= g.embSize + g.jpgSize
		gone = append(gone, g)
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	for _, g := range gone {
		for _, p := range []string{embPath(s.opts.Dir, g.seq), jpgPath(s.opts.Dir, g.seq)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("frame store: old segment not deleted", "path", p, "err", err)
			}
		}
	}
}

// WaitLoaded waits until the segments of earlier runs are read.
func (s *Store) WaitLoaded() { <-s.loadDone }

// lookup finds a frame's segment and meta.
func (s *Store) lookup(id ID) (*segment, meta, string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := slices.BinarySearchFunc(s.segs, id.seq(), func(a *segment, seq uint32) int { return cmp.Compare(a.seq, seq) })
	if !ok {
		return nil, meta{}, "", false
	}
	g := s.segs[i]
	j, ok := slices.BinarySearchFunc(g.frames, id.off(), func(m meta, off uint32) int { return cmp.Compare(m.off, off) })
	if !ok {
		return nil, meta{}, "", false
	}
	m := g.frames[j]
	return g, m, s.cameras[m.cam], true
}

// Get reads a stored frame.
func (s *Store) Get(id ID) (Stored, error) {
	g, _, _, ok := s.lookup(id)
	if !ok {
		return Stored{}, ErrNotFound
	}
	f, err := os.Open(embPath(s.opts.Dir, g.seq))
	if err != nil {
		return Stored{}, notFound(err)
	}
	defer f.Close()
	r, err := readRecord(f, int64(id.off()))
	if err != nil {
		return Stored{}, err
	}
	return Stored{
		Frame: Frame{ID: id, Camera: r.camera, Time: time.Unix(0, r.time), Reason: r.reason},
		Crop:  r.crop, Width: r.width, Height: r.height, Embedding: decodeEmbedding(nil, r.embedding),
	}, nil
}

// Thumbnail reads a stored frame's JPEG thumbnail.
func (s *Store) Thumbnail(id ID) ([]byte, error) {
	g, _, _, ok := s.lookup(id)
	if !ok {
		return nil, ErrNotFound
	}
	f, err := os.Open(embPath(s.opts.Dir, g.seq))
	if err != nil {
		return nil, notFound(err)
	}
	r, err := readRecord(f, int64(id.off()))
	f.Close()
	if err != nil {
		return nil, err
	}
	if r.thumbLen == 0 {
		return nil, ErrNotFound
	}
	j, err := os.Open(jpgPath(s.opts.Dir, g.seq))
	if err != nil {
		return nil, notFound(err)
	}
	defer j.Close()
	b := make([]byte, r.thumbLen)
	if _, err := j.ReadAt(b, int64(r.thumbOff)); err != nil {
		return nil, err
	}
	if crc32.Checksum(b, castagnoli) != r.thumbCRC {
		return nil, fmt.Errorf("frame %s: thumbnail checksum: %w", id, errCorrupt)
	}
	return b, nil
}

// notFound: a segment retention deleted after the lookup.
func notFound(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// DeleteAll deletes every stored frame: the segments, and those moved
// aside as corrupt. New frames are stored from here on. It waits for the
// loader, so that no segment of an earlier run is read in after it.
func (s *Store) DeleteAll() error {
	done := make(chan error, 1)
	select {
	case s.deletes <- done: // the writer owns the active segment
		return <-done
	case <-s.closing:
		return errors.New("frame store: closed")
	}
}

func (s *Store) deleteAll() error {
	<-s.loadDone
	s.closeActive()
	s.mu.Lock()
	gone := s.segs
	s.segs = nil
	s.mu.Unlock()
	var errs []error
	for _, g := range gone {
		for _, p := range []string{embPath(s.opts.Dir, g.seq), jpgPath(s.opts.Dir, g.seq)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(s.opts.Dir, "corrupt")); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("frame store: every stored frame deleted", "segments", len(gone))
	return errors.Join(errs...)
}
