package publish

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/siglipd/siglipd/internal/kit"
)

// message is one MQTT publish.
type message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// outbox is the persistent, bounded, ordered queue of events not yet
// acknowledged by the broker. An event is one or more messages (its
// message on the events topic, then, with Home Assistant discovery, its
// label's event entity's: see MQTT.Event), kept as one record, so that the
// bound, the depth and the fsyncs count events, and an event's messages are
// stored and dropped together. Each record is one file, <seq>.msg, written
// to a temporary name, fsync'ed and renamed, so a crash (SIGKILL, power cut)
// leaves either the whole record or none. Files are deleted once the
// broker acknowledged all of a record's messages. Records are also kept in
// memory (events are a few hundred bytes; 10000 of them ≈ 3 MB), so sending
// never reads the disk.
//
// A file per event rather than one log file: deleting acknowledged events
// is an unlink, a damaged file costs one event, and the folder can be
// inspected with ls and cat. Events come at human rates, so the fsync per
// event does not matter (BenchmarkOutboxAdd; figures in
// docs/measurements.md).
//
// A disk that is full or read-only does not stop delivery: an event whose
// file cannot be written is kept in memory only (within the same bound) and
// sent from there, and is lost only if the process ends before the broker
// has it. Its file is written later, by persist, once writes work again and
// if it is still waiting; a file that could not be removed after delivery
// (a read-only disk) is removed then too, so that a restart does not send
// it again.
//
// outbox is not safe for concurrent use; pending guards it with its mutex.
type outbox struct {
	dir  string
	max  int
	lock *os.File // flock'ed: one process per outbox

	next     uint64   // sequence number of the next record
	recs     []record // oldest first
	inflight uint64   // seq of the record being sent; 0 for none
	// stale are the files of records delivered or dropped that could not
	// be removed. At most the files written before the disk failed, so
	// bounded by max.
	stale []uint64
}

type record struct {
	seq    uint64
	msgs   []message // sent in this order; the record is done when the broker took the last
	onDisk bool      // false when writing the file failed: kept in memory only
}

const (
	msgExt      = ".msg"
	tmpExt      = ".tmp"
	corruptExt  = ".corrupt"
	lockName    = "lock"
	recordMagic = "SGQ2" // file format version 2: one or more messages
	// recordMagicV1 is the format siglipd wrote before an event could have
	// more than one message; still read, so an outbox left by an upgrade
	// is delivered.
	recordMagicV1 = "SGQ1"
)

// openOutbox opens (creating) the outbox in dir and loads what a previous
// run left. problems lists files that could not be read: they are renamed to
// *.corrupt, kept for inspection, and skipped. An error means the outbox is
// unusable (folder not writable, or in use by another process).
func openOutbox(dir string, limit int) (o *outbox, problems []error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("outbox %s: %w", dir, kit.UnwrapPath(err))
	}
	// Read-only: flock needs no more, and a file open for writing would
	// keep the disk from being remounted read-only (EBUSY), by an operator
	// or by a test of what happens then.
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox %s: %w", dir, kit.UnwrapPath(err))
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("outbox %s: in use by another siglipd process (lock %s held): %w", dir, lock.Name(), err)
	}
	o = &outbox{dir: dir, max: limit, lock: lock, next: 1}

	entries, err := os.ReadDir(dir)
	if err != nil {
		o.close()
		return nil, nil, fmt.Errorf("outbox %s: %w", dir, kit.UnwrapPath(err))
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, tmpExt):
			// A write interrupted before its rename: the event was never
			// acknowledged to the caller as stored, so nothing is lost.
			os.Remove(path)
		case strings.HasSuffix(name, msgExt):
			seq, perr := strconv.ParseUint(strings.TrimSuffix(name, msgExt), 10, 64)
			if perr != nil {
				continue // not ours
			}
			msgs, rerr := readRecord(path)
			if rerr != nil {
				os.Rename(path, path+corruptExt)
				problems = append(problems, fmt.Errorf("outbox %s: set aside as %s: %w", path, name+corruptExt, rerr))
				continue
			}
			o.recs = append(o.recs, record{seq: seq, msgs: msgs, onDisk: true})
			o.next = max(o.next, seq+1)
		}
	}
	slices.SortFunc(o.recs, func(a, b record) int { return compareSeq(a.seq, b.seq) })
	return o, problems, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// trim drops the oldest records (never the one in flight) until at most max
// remain, and returns how many it dropped.
func (o *outbox) trim() int {
	dropped := 0
	for len(o.recs) > o.max {
		i := 0
		if o.recs[0].seq == o.inflight {
			if len(o.recs) < 2 {
				break
			}
			i = 1
		}
		o.delete(o.recs[i])
		o.recs = slices.Delete(o.recs, i, i+1)
		dropped++
	}
	return dropped
}

// add appends one event's messages as one record, persisted before add
// returns, and drops the oldest when the outbox is over its bound. A write
// error keeps the record in memory (it is still delivered unless the
// process dies first) and is returned.
func (o *outbox) add(msgs ...message) (dropped int, err error) {
	r := record{seq: o.next, msgs: msgs}
	o.next++
	if err = o.write(r); err == nil {
		r.onDisk = true
	}
	o.recs = append(o.recs, r)
	return o.trim(), err
}

// persistBatch bounds the files persist writes at a time, so that a
// backlog kept in memory (up to max) is not written, each file fsync'ed,
// while the caller waits: events at human rates catch up in a few calls.
const persistBatch = 64

// persist removes the stale files and writes the files of up to
// persistBatch records that are kept in memory only, oldest first; it
// stops at the first that fails and returns its error. The record in
// flight is written too: if the broker has it, done removes the file.
func (o *outbox) persist() error {
	for len(o.stale) > 0 {
		if err := o.remove(o.stale[0]); err != nil {
			return err
		}
		o.stale = o.stale[1:]
	}
	n := 0
	for i := range o.recs {
		if o.recs[i].onDisk {
			continue
		}
		if n == persistBatch {
			break
		}
		if err := o.write(o.recs[i]); err != nil {
			return err
		}
		o.recs[i].onDisk = true
		n++
	}
	return nil
}

// memoryOnly is how many records are kept in memory only.
func (o *outbox) memoryOnly() int {
	n := 0
	for _, r := range o.recs {
		if !r.onDisk {
			n++
		}
	}
	return n
}

// take returns the oldest record and marks it in flight.
func (o *outbox) take() (record, bool) {
	if len(o.recs) == 0 {
		return record{}, false
	}
	o.inflight = o.recs[0].seq
	return o.recs[0], true
}

// release marks nothing in flight (the send failed; it stays first).
func (o *outbox) release() { o.inflight = 0 }

// done removes a delivered record.
func (o *outbox) done(seq uint64) {
	o.inflight = 0
	for i, r := range o.recs {
		if r.seq == seq {
			o.delete(r)
			o.recs = slices.Delete(o.recs, i, i+1)
			return
		}
	}
	// Dropped while in flight cannot happen (trim skips it); nothing to do.
}

func (o *outbox) len() int { return len(o.recs) }

func (o *outbox) close() {
	if o.lock != nil {
		o.lock.Close() // releases the flock
		o.lock = nil
	}
}

func (o *outbox) path(seq uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", seq, msgExt))
}

func (o *outbox) delete(r record) {
	if r.onDisk && o.remove(r.seq) != nil {
		// An undeletable file (a read-only disk) would be sent again after
		// a restart; that is the at-least-once contract, not a loss, so it
		// is not reported. persist tries again once writes work.
		o.stale = append(o.stale, r.seq)
	}
}

// remove removes a record's file; one that is not there is no error.
func (o *outbox) remove(seq uint64) error {
	if err := os.Remove(o.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("outbox %w", err)
	}
	return nil
}

func (o *outbox) write(r record) error {
	if err := kit.WriteFile(o.path(r.seq), encodeRecord(r.msgs...), 0o600, true); err != nil {
		return fmt.Errorf("outbox %w", err)
	}
	return nil
}

// encodeRecord writes an event's messages (1 to 255) as:
//
//	"SGQ2" | count u8 | count × (qos u8 | retain u8 | topic len u16 | topic | payload len u32 | payload) | crc32 (IEEE) of all before
//
// Format 1 was "SGQ1" and one message, without the count.
func encodeRecord(msgs ...message) []byte {
	var b bytes.Buffer
	b.WriteString(recordMagic)
	b.WriteByte(byte(len(msgs)))
	for _, m := range msgs {
		b.WriteByte(m.QoS)
		if m.Retain {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
		binary.Write(&b, binary.BigEndian, uint16(len(m.Topic)))
		b.WriteString(m.Topic)
		binary.Write(&b, binary.BigEndian, uint32(len(m.Payload)))
		b.Write(m.Payload)
	}
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

var errCorrupt = errors.New("not a complete outbox record (bad length, magic or checksum)")

func readRecord(path string) ([]message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, kit.UnwrapPath(err)
	}
	return decodeRecord(data)
}

// decodeRecord reads a record of format 2, or of format 1 (one message).
func decodeRecord(data []byte) ([]message, error) {
	if len(data) < len(recordMagic)+4 {
		return nil, errCorrupt
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errCorrupt
	}
	count, rest := 1, body[len(recordMagic):]
	switch string(body[:len(recordMagic)]) {
	case recordMagic:
		if len(rest) < 1 || rest[0] == 0 {
			return nil, errCorrupt
		}
		count, rest = int(rest[0]), rest[1:]
	case recordMagicV1:
	default:
		return nil, errCorrupt
	}
	msgs := make([]message, 0, count)
	for range count {
		if len(rest) < 1+1+2 {
			return nil, errCorrupt
		}
		m := message{QoS: rest[0], Retain: rest[1] == 1}
		tl := int(binary.BigEndian.Uint16(rest[2:4]))
		rest = rest[4:]
		if len(rest) < tl+4 {
			return nil, errCorrupt
		}
		m.Topic = string(rest[:tl])
		pl := int(binary.BigEndian.Uint32(rest[tl : tl+4]))
		rest = rest[tl+4:]
		if len(rest) < pl {
			return nil, errCorrupt
		}
		m.Payload = append([]byte(nil), rest[:pl]...)
		rest = rest[pl:]
		msgs = append(msgs, m)
	}
	if len(rest) != 0 {
		return nil, errCorrupt
	}
	return msgs, nil
}
