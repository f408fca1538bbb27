package onnxpb

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// External places a tensor's bytes in an external data file, as ONNX does
// for models over protobuf's 2 GB limit: TensorProto.data_location is
// EXTERNAL and external_data holds location, offset and length. Location is
// relative to the model file's folder.
type External struct {
	Location       string
	Offset, Length int64
}

// externalAlign aligns each tensor in the data file to a page, so ONNX
// Runtime may map the file instead of copying it.
const externalAlign = 4096

func (e *External) appendTo(b []byte) []byte {
	for _, kv := range [][2]string{
		{"location", e.Location},
		{"offset", strconv.FormatInt(e.Offset, 10)},
		{"length", strconv.FormatInt(e.Length, 10)},
	} {
		var entry []byte
		entry = appendString(entry, 1, kv[0])
		entry = appendString(entry, 2, kv[1])
		b = appendMessage(b, 13, entry) // TensorProto.external_data
	}
	b = protowire.AppendTag(b, 14, protowire.VarintType) // data_location
	return protowire.AppendVarint(b, 1)                  // EXTERNAL
}

// elemSize is the byte size of one element of a data type, 0 if unknown.
func elemSize(dataType int) int64 {
	switch dataType {
	case Uint8, Int8:
		return 1
	case Float16:
		return 2
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	}
	return 0
}

// Size is the tensor's data size in bytes: len(Raw), or what its dims and
// data type say for a tensor whose bytes come from Load.
func (t *Tensor) Size() int64 {
	if t.Raw != nil || t.Load == nil {
		return int64(len(t.Raw))
	}
	n := elemSize(t.DataType)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// inlineSize is the size of the bytes serialized inside the model file.
func (t *Tensor) inlineSize() int64 {
	if t.External != nil {
		return 0
	}
	return t.Size()
}

// bytes returns the tensor's data, calling Load if needed, and checks that
// a loaded tensor has the size its dims promise.
func (t *Tensor) bytes() ([]byte, error) {
	if t.Raw != nil || t.Load == nil {
		return t.Raw, nil
	}
	raw, err := t.Load()
	if err != nil {
		return nil, &LoadError{Name: t.Name, Err: err}
	}
	if want := t.Size(); int64(len(raw)) != want {
		return nil, fmt.Errorf("initializer %q: loaded %d bytes, its dims %v need %d", t.Name, len(raw), t.Dims, want)
	}
	return raw, nil
}

// LoadError is a Tensor.Load failure while writing: the source's fault,
// not the output file's, so WriteFile does not prefix the output path.
type LoadError struct {
	Name string
	Err  error
}

func (e *LoadError) Error() string { return e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// WriteFile writes the model to path. When its initializers hold more than
// externalOver bytes, every initializer of 1 KiB or more goes into
// path+"_data" (e.g. vision_model.onnx_data) as ONNX external data, so the
// model file stays far below protobuf's 2 GB limit; externalOver < 0 never
// does. Tensors with Load are loaded one at a time, so memory holds one
// weight, not the model. It returns the paths written.
func (m *Model) WriteFile(path string, externalOver int64) ([]string, error) {
	var total int64
	for i := range m.Graph.Initializers {
		total += m.Graph.Initializers[i].Size()
	}
	written := []string{path}
	if externalOver >= 0 && total > externalOver {
		dataPath := path + "_data"
		if err := m.writeExternalData(dataPath, filepath.Base(dataPath), 1024); err != nil {
			return nil, err
		}
		written = append(written, dataPath)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := m.WriteTo(w); err != nil {
		f.Close()
		return nil, pathError(path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return written, f.Close()
}

func pathError(path string, err error) error {
	var le *LoadError
	if errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// writeExternalData moves every initializer of at least minSize bytes into
// the data file at path (named location in the model), page-aligned, and
// drops its bytes from memory.
func (m *Model) writeExternalData(path, location string, minSize int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	var off int64
	pad := make([]byte, externalAlign)
	for i := range m.Graph.Initializers {
		t := &m.Graph.Initializers[i]
		if t.External != nil || t.Size() < minSize {
			continue
		}
		raw, err := t.bytes()
		if err == nil && off%externalAlign != 0 {
			n := externalAlign - off%externalAlign
			_, err = w.Write(pad[:n])
			off += n
		}
		if err == nil {
			_, err = w.Write(raw)
		}
		if err != nil {
			f.Close()
			return pathError(path, err)
		}
		t.External = &External{Location: location, Offset: off, Length: int64(len(raw))}
		t.Raw, t.Load = nil, nil
		off += int64(len(raw))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
