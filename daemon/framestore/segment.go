package framestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A segment is two append-only files with the same number:
//
//	<seq>.emb  header, then one record per frame: its camera, time, crop,
//	           where its thumbnail is, and its embedding (float32)
//	<seq>.jpg  the thumbnails, back to back
//
// Thumbnails live apart so that opening the store reads embeddings only
// (about a fifth of the bytes). A frame's thumbnail is written before its
// record, so a record never points past what was written before it: after a
// SIGKILL the .emb file ends in at most one torn record, which is cut off.
//
// Record: u32 payload length, u32 CRC-32C of the payload, payload:
//
//	u8 version | u8 reason | u16 camera length | camera | i64 time (Unix ns)
//	| 4×i32 crop | 2×i32 frame size | u32 thumbnail offset | u32 thumbnail
//	length | u32 thumbnail CRC-32C | u16 dim | dim × float32
//
// Embeddings are kept as the model gave them (float32): a preview's
// probability for a stored frame is then the live one, bit for bit, and a
// search ranks near-identical frames of a still scene as an exact scan
// does. float16 would save 2 bytes a value, a small part of a frame's
// bytes next to its thumbnail (docs/measurements.md, "frame store:
// embedding precision and scan speed").
const (
	embMagic      = "SGLPFRM1"
	recordVersion = 1
	// maxRecord bounds a record's payload, so a corrupt length cannot make
	// the reader allocate gigabytes.
	maxRecord = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a segment whose bytes are not what siglipd wrote: a bad
// header, or a complete record whose checksum does not match.
var errCorrupt = errors.New("corrupt")

func segName(seq uint32) string { return fmt.Sprintf("%08d", seq) }

// parseSeq reads the number of a segment file name ("00000012.emb").
func parseSeq(name string) (uint32, bool) {
	base, ok := strings.CutSuffix(name, ".emb")
	if !ok || len(base) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 32)
	return uint32(n), err == nil
}

func embPath(dir string, seq uint32) string { return filepath.Join(dir, segName(seq)+".emb") }
func jpgPath(dir string, seq uint32) string { return filepath.Join(dir, segName(seq)+".jpg") }

// header is the start of a .emb file: the model its embeddings are from and
// their length.
func header(modelKey string, dim int) []byte {
	b := []byte(embMagic)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(modelKey)))
	b = append(b, modelKey...)
	return binary.LittleEndian.AppendUint16(b, uint16(dim))
}

func readHeader(r io.Reader) (modelKey string, dim int, size int64, err error) {
	var fixed [10]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return "", 0, 0, fmt.Errorf("header: %w", errCorrupt)
	}
	if string(fixed[:8]) != embMagic {
		return "", 0, 0, fmt.Errorf("header: not a frame store segment: %w", errCorrupt)
	}
	key := make([]byte, binary.LittleEndian.Uint16(fixed[8:]))
	var d [2]byte
	if _, err := io.ReadFull(r, key); err != nil {
		return "", 0, 0, fmt.Errorf("header: %w", errCorrupt)
	}
	if _, err := io.ReadFull(r, d[:]); err != nil {
		return "", 0, 0, fmt.Errorf("header: %w", errCorrupt)
	}
	dim = int(binary.LittleEndian.Uint16(d[:]))
	if dim == 0 {
		return "", 0, 0, fmt.Errorf("header: embedding length 0: %w", errCorrupt)
	}
	return string(key), dim, int64(12 + len(key)), nil
}

// record is one frame as a .emb record holds it.
type record struct {
	reason     Reason
	camera     string
	time       int64
	crop       image.Rectangle
	width      int
	height     int
	thumbOff   uint32
	thumbLen   uint32
	thumbCRC   uint32
	embedding  []byte // float32, little endian
	embeddingA int    // offset of embedding within the record (from its length prefix)
}

// appendRecord appends r's bytes (length, checksum, payload) to b.
func appendRecord(b []byte, r *record) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length, CRC
	b = append(b, recordVersion, byte(r.reason))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.camera)))
	b = append(b, r.camera...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.time))
	for _, v := range []int{r.crop.Min.X, r.crop.Min.Y, r.crop.Max.X, r.crop.Max.Y, r.width, r.height} {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
	}
	b = binary.LittleEndian.AppendUint32(b, r.thumbOff)
	b = binary.LittleEndian.AppendUint32(b, r.thumbLen)
	b = binary.LittleEndian.AppendUint32(b, r.thumbCRC)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.embedding)/4))
	b = append(b, r.embedding...)
	payload := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// parseRecord reads a payload whose checksum matched.
func parseRecord(p []byte) (*record, error) {
	bad := func(what string) (*record, error) {
		return nil, fmt.Errorf("record: %s: %w", what, errCorrupt)
	}
	if len(p) < 4 || p[0] != recordVersion {
		return bad("unknown version")
	}
	r := &record{reason: Reason(p[1])}
	n := int(binary.LittleEndian.Uint16(p[2:]))
	p = p[4:]
	const fixed = 8 + 6*4 + 3*4 + 2
	if len(p) < n+fixed {
		return bad("short")
	}
	r.camera, p = string(p[:n]), p[n:]
	r.time = int64(binary.LittleEndian.Uint64(p))
	var v [6]int
	for i := range v {
		v[i] = int(int32(binary.LittleEndian.Uint32(p[8+4*i:])))
	}
	r.crop = image.Rect(v[0], v[1], v[2], v[3])
	r.width, r.height = v[4], v[5]
	p = p[8+24:]
	r.thumbOff = binary.LittleEndian.Uint32(p)
	r.thumbLen = binary.LittleEndian.Uint32(p[4:])
	r.thumbCRC = binary.LittleEndian.Uint32(p[8:])
	dim := int(binary.LittleEndian.Uint16(p[12:]))
	p = p[14:]
	if len(p) != 4*dim {
		return bad("embedding length")
	}
	r.embedding = p
	r.embeddingA = 8 + 4 + n + fixed
	return r, nil
}

// scanSegment reads a .emb file from the start: its header, then each
// record, handing it to fn with its offset. It returns the offset after
// the last whole record. A record cut short by the end of the file (a
// write a crash interrupted) ends the scan without an error: torn reports
// it. A complete record with a bad checksum is errCorrupt.
func scanSegment(path string, fn func(off int64, r *record)) (modelKey string, dim int, end int64, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, 0, false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	modelKey, dim, off, err := readHeader(br)
	if err != nil {
		return "", 0, 0, false, err
	}
	var lenCRC [8]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(br, lenCRC[:]); err != nil {
			if err == io.EOF {
				return modelKey, dim, off, false, nil
			}
			if err == io.ErrUnexpectedEOF {
				return modelKey, dim, off, true, nil
			}
			return modelKey, dim, off, false, err
		}
		n := binary.LittleEndian.Uint32(lenCRC[:])
		if n > maxRecord {
			return modelKey, dim, off, false, fmt.Errorf("record at %d: length %d: %w", off, n, errCorrupt)
		}
		if int(n) > cap(buf) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return modelKey, dim, off, true, nil
			}
			return modelKey, dim, off, false, err
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(lenCRC[4:]) {
			return modelKey, dim, off, false, fmt.Errorf("record at %d: checksum: %w", off, errCorrupt)
		}
		r, err := parseRecord(buf)
		if err != nil {
			return modelKey, dim, off, false, fmt.Errorf("record at %d: %w", off, err)
		}
		if len(r.embedding) != 4*dim {
			return modelKey, dim, off, false, fmt.Errorf("record at %d: embedding length %d, header says %d: %w", off, len(r.embedding)/4, dim, errCorrupt)
		}
		fn(off, r)
		off += 8 + int64(n)
	}
}

// readRecord reads the record at off of a .emb file.
func readRecord(f *os.File, off int64) (*record, error) {
	var lenCRC [8]byte
	if _, err := f.ReadAt(lenCRC[:], off); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(lenCRC[:])
	if n > maxRecord {
		return nil, fmt.Errorf("record at %d: length %d: %w", off, n, errCorrupt)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off+8); err != nil {
		return nil, err
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(lenCRC[4:]) {
		return nil, fmt.Errorf("record at %d: checksum: %w", off, errCorrupt)
	}
	return parseRecord(buf)
}

// decodeEmbedding reads a record's embedding into dst.
func decodeEmbedding(dst []float32, b []byte) []float32 {
	if cap(dst) < len(b)/4 {
		dst = make([]float32, len(b)/4)
	}
	dst = dst[:len(b)/4]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dst
}

func encodeEmbedding(x []float32) []byte {
	out := make([]byte, 0, 4*len(x))
	for _, v := range x {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// dot is the exact cosine of a unit query and a record's unit embedding,
// summed in float64 so that it does not depend on the order of the sum.
func dot(q []float32, b []byte) float64 {
	var s float64
	for i, v := range q {
		s += float64(v) * float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return s
}

// unixNano is t as the record keeps it; the zero time stays 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func finite(x []float32) bool {
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
