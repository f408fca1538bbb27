package onnxpb

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// smallField is the largest field ReadInitializers reads into memory while
// walking a tensor; anything bigger (weights) is skipped with Seek and only
// read back if the tensor turns out to be wanted.
const smallField = 4096

// ReadInitializers returns the values of the named initializers of the model
// file at path, as float64s, reading only their bytes: it streams through
// the file and seeks past everything else. Data stored outside the file
// (ONNX external data, as in exports over 2 GB) is read from the file it
// names. Names that are not found are absent from the result.
func ReadInitializers(path string, names ...string) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	r := &reader{f: f, br: bufio.NewReaderSize(f, 64<<10), dir: filepath.Dir(path)}
	out := map[string][]float64{}
	// ModelProto: field 7 is the graph.
	err = r.fields(st.Size(), func(num protowire.Number, typ protowire.Type, length int64) (bool, error) {
		if num != 7 || typ != protowire.BytesType { // 7: ModelProto.graph
			return false, nil
		}
		// GraphProto: field 5 is an initializer (TensorProto).
		return true, r.fields(r.pos+length, func(num protowire.Number, typ protowire.Type, length int64) (bool, error) {
			if num != 5 || typ != protowire.BytesType {
				return false, nil
			}
			t, err := r.tensor(r.pos + length)
			if err != nil {
				return true, err
			}
			if want[t.name] {
				vals, err := r.values(t)
				if err != nil {
					return true, fmt.Errorf("initializer %q: %w", t.name, err)
				}
				out[t.name] = vals
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid ONNX file: %w", path, err)
	}
	return out, nil
}

// reader walks protobuf fields over a seekable file, keeping track of the
// offset so big fields can be skipped without reading them.
type reader struct {
	f   *os.File
	br  *bufio.Reader
	pos int64
	dir string
}

func (r *reader) seek(pos int64) error {
	if _, err := r.f.Seek(pos, io.SeekStart); err != nil {
		return err
	}
	r.br.Reset(r.f)
	r.pos = pos
	return nil
}

func (r *reader) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, err
		}
		r.pos++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflow")
}

func (r *reader) read(n int64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, err
	}
	r.pos += n
	return b, nil
}

// fields calls fn for each varint and length-delimited field until end.
// For a varint fn gets its value; for a length-delimited field it gets the
// payload length with the reader at the payload's start, and returns whether
// it consumed the payload (else fields skips it with a seek).
func (r *reader) fields(end int64, fn func(protowire.Number, protowire.Type, int64) (bool, error)) error {
	for r.pos < end {
		key, err := r.varint()
		if err != nil {
			return unexpectedEOF(err)
		}
		num, typ := protowire.Number(key>>3), protowire.Type(key&7)
		switch typ {
		case protowire.VarintType:
			v, err := r.varint()
			if err != nil {
				return unexpectedEOF(err)
			}
			if _, err := fn(num, typ, int64(v)); err != nil {
				return err
			}
		case protowire.Fixed32Type:
			if _, err := r.read(4); err != nil {
				return unexpectedEOF(err)
			}
		case protowire.Fixed64Type:
			if _, err := r.read(8); err != nil {
				return unexpectedEOF(err)
			}
		case protowire.BytesType:
			n, err := r.varint()
			if err != nil {
				return unexpectedEOF(err)
			}
			length := int64(n)
			if r.pos+length > end || length < 0 {
				return fmt.Errorf("field %d of %d bytes runs past its message (truncated file?)", num, length)
			}
			start := r.pos
			consumed, err := fn(num, typ, length)
			if err != nil {
				return err
			}
			if !consumed || r.pos != start+length {
				if err := r.seek(start + length); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", typ)
		}
	}
	if r.pos != end {
		return fmt.Errorf("message ends at byte %d, expected %d", r.pos, end)
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("file ends in the middle of a field (truncated?): %w", io.ErrUnexpectedEOF)
	}
	return err
}

// tensorRef is a TensorProto located in the file: its small fields read,
// its data fields remembered by offset.
type tensorRef struct {
	name     string
	dataType int
	dims     []int64
	raw      span // raw_data
	floats   span // float_data (packed fixed32)
	doubles  span // double_data (packed fixed64)
	// externalData is data_location == EXTERNAL; external holds the
	// external_data entries (location, offset, length).
	externalData bool
	external     map[string]string
}

type span struct{ off, n int64 }

func (r *reader) tensor(end int64) (tensorRef, error) {
	t := tensorRef{raw: span{-1, 0}, floats: span{-1, 0}, doubles: span{-1, 0}}
	var entry map[string]string
	err := r.fields(end, func(num protowire.Number, typ protowire.Type, length int64) (bool, error) {
		if typ == protowire.VarintType {
			switch num {
			case 1: // dims, unpacked (onnx.proto is proto2)
				t.dims = append(t.dims, length)
			case 2:
				t.dataType = int(length)
			case 14:
				t.externalData = length == 1 // DataLocation EXTERNAL
			}
			return true, nil
		}
		switch num {
		case 1: // dims, packed
			if length > smallField {
				return false, errors.New("tensor dims field too long")
			}
			b, err := r.read(length)
			for err == nil && len(b) > 0 {
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return true, errors.New("bad packed dims")
				}
				t.dims, b = append(t.dims, int64(v)), b[n:]
			}
			return true, err
		case 8: // name
			b, err := r.read(length)
			t.name = string(b)
			return true, err
		case 9:
			t.raw = span{r.pos, length}
		case 4:
			t.floats = span{r.pos, length}
		case 10:
			t.doubles = span{r.pos, length}
		case 13: // external_data: StringStringEntryProto{key=1, value=2}
			if length > smallField {
				return false, nil
			}
			b, err := r.read(length)
			if err != nil {
				return true, err
			}
			k, v := parseEntry(b)
			if entry == nil {
				entry = map[string]string{}
			}
			entry[k] = v
			return true, nil
		}
		return false, nil
	})
	if t.externalData {
		t.external = entry
	}
	return t, err
}

func parseEntry(b []byte) (key, value string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return
		}
		b = b[n:]
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return
		}
		b = b[m:]
		if num == 1 {
			key = string(v)
		} else if num == 2 {
			value = string(v)
		}
	}
	return
}

func (r *reader) values(t tensorRef) ([]float64, error) {
	switch {
	case t.floats.off >= 0:
		b, err := r.readSpan(t.floats)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(b)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return out, nil
	case t.doubles.off >= 0:
		b, err := r.readSpan(t.doubles)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	}
	var raw []byte
	var err error
	switch {
	case t.raw.off >= 0:
		raw, err = r.readSpan(t.raw)
	case t.externalData:
		raw, err = r.readExternal(t.external)
	default:
		return nil, errors.New("has no data")
	}
	if err != nil {
		return nil, err
	}
	return decodeRaw(raw, t.dataType)
}

func (r *reader) readSpan(s span) ([]byte, error) {
	if err := r.seek(s.off); err != nil {
		return nil, err
	}
	return r.read(s.n)
}

func (r *reader) readExternal(e map[string]string) ([]byte, error) {
	loc := e["location"]
	if !filepath.IsLocal(loc) {
		// The location is relative to the model file's folder (as ONNX
		// Runtime resolves it), and never leaves it.
		return nil, fmt.Errorf("external data location %q is not a file inside the model's folder", loc)
	}
	off, err := strconv.ParseInt(cmp.Or(e["offset"], "0"), 10, 64)
	if err != nil || off < 0 {
		return nil, fmt.Errorf("external data in %s: bad offset %q", loc, e["offset"])
	}
	n, err := strconv.ParseInt(e["length"], 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("external data in %s has no length", loc)
	}
	// Relative to the path the model was opened by, not to its target: in
	// a Hugging Face cache snapshot both files are symlinks into blobs/.
	path := filepath.Join(r.dir, loc)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("external data: %w (is the model's download complete?)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off+n > st.Size() || off+n < off {
		return nil, fmt.Errorf("external data %s holds %d bytes, but bytes %d to %d are wanted (a truncated download?)", path, st.Size(), off, off+n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("external data %s: %w", path, err)
	}
	return b, nil
}

func decodeRaw(raw []byte, dataType int) ([]float64, error) {
	switch dataType {
	case Float:
		out := make([]float64, len(raw)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return out, nil
	case Double:
		out := make([]float64, len(raw)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return out, nil
	case Float16:
		out := make([]float64, len(raw)/2)
		for i := range out {
			out[i] = float64(HalfToFloat(binary.LittleEndian.Uint16(raw[2*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported data type %d (want float, double or float16)", dataType)
}
