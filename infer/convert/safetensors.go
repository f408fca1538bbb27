package convert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Weights gives a checkpoint's tensors by their transformers state-dict
// names (vision_model.encoder.layers.0.self_attn.q_proj.weight, ...).
// Shape is answered without reading data, so a graph is checked against
// the config before any weight is read; Float32 reads one tensor.
type Weights interface {
	Shape(name string) (dims []int64, ok bool)
	Float32(name string) ([]float32, error)
}

// Safetensors is a checkpoint's weights in the safetensors format: one
// model.safetensors, or model.safetensors.index.json and its shards. F32,
// F16 and BF16 tensors are read as float32 (both half formats convert
// exactly).
type Safetensors struct {
	tensors map[string]stTensor
	files   []string
}

type stTensor struct {
	file       string
	dtype      string
	dims       []int64
	begin, end int64 // absolute file offsets
}

// safetensorsFiles are the weight files of the checkpoint folder dir, and
// the index when it is sharded; nil when it has none.
func safetensorsFiles(dir string) (files []string, index string, err error) {
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		return []string{single}, "", nil
	}
	index = filepath.Join(dir, "model.safetensors.index.json")
	raw, err := os.ReadFile(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("weights index %s: %w", index, err)
	}
	var doc struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, "", fmt.Errorf("weights index %s: not valid JSON: %w", index, err)
	}
	seen := map[string]bool{}
	for name, shard := range doc.WeightMap {
		if shard == "" || filepath.IsAbs(shard) || shard != filepath.Base(shard) {
			return nil, "", fmt.Errorf("weights index %s: tensor %q is in %q, want a file name in the same folder", index, name, shard)
		}
		if !seen[shard] {
			seen[shard] = true
			files = append(files, filepath.Join(dir, shard))
		}
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("weights index %s: weight_map names no files", index)
	}
	sort.Strings(files)
	return files, index, nil
}

// OpenSafetensors reads the headers of the weight files (not the weights).
// A tensor whose bytes run past its file, or whose size does not match its
// shape and dtype, is an error naming the tensor and the file.
func OpenSafetensors(files ...string) (*Safetensors, error) {
	s := &Safetensors{tensors: map[string]stTensor{}, files: files}
	for _, path := range files {
		if err := s.readHeader(path); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// maxHeader bounds a safetensors header; the format's own reader refuses
// headers over 100 MB.
const maxHeader = 100 << 20

func (s *Safetensors) readHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("weights %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("weights %s: %w", path, err)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return fmt.Errorf("weights %s: too short for a safetensors file (%d bytes)", path, st.Size())
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || int64(n)+8 > st.Size() {
		return fmt.Errorf("weights %s: header length %d does not fit the file's %d bytes: not a safetensors file, or truncated", path, n, st.Size())
	}
	head := make([]byte, n)
	if _, err := f.ReadAt(head, 8); err != nil {
		return fmt.Errorf("weights %s: %w", path, err)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(head, &entries); err != nil {
		return fmt.Errorf("weights %s: header is not valid JSON: %w", path, err)
	}
	base := int64(n) + 8
	for name, rawEntry := range entries {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string  `json:"dtype"`
			Shape   []int64 `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(rawEntry, &e); err != nil || len(e.Offsets) != 2 {
			return fmt.Errorf("weights %s: tensor %q: header entry is not {dtype, shape, data_offsets}", path, name)
		}
		size := dtypeSize(e.Dtype)
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return fmt.Errorf("weights %s: tensor %q: negative dimension in shape %v", path, name, e.Shape)
			}
			count *= d
		}
		t := stTensor{file: path, dtype: e.Dtype, dims: e.Shape, begin: base + e.Offsets[0], end: base + e.Offsets[1]}
		switch {
		case e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || t.end > st.Size():
			return fmt.Errorf("weights %s: tensor %q: bytes %d..%d run past the file's %d bytes of data (truncated download?)",
				path, name, e.Offsets[0], e.Offsets[1], st.Size()-base)
		case size > 0 && t.end-t.begin != count*size:
			return fmt.Errorf("weights %s: tensor %q: %d bytes for shape %v of %s, which needs %d", path, name, t.end-t.begin, e.Shape, e.Dtype, count*size)
		}
		if prev, dup := s.tensors[name]; dup {
			return fmt.Errorf("weights: tensor %q is in both %s and %s", name, prev.file, path)
		}
		s.tensors[name] = t
	}
	return nil
}

func dtypeSize(dtype string) int64 {
	switch dtype {
	case "F32":
		return 4
	case "F16", "BF16":
		return 2
	}
	return 0
}

// Shape is the tensor's shape as the file declares it.
func (s *Safetensors) Shape(name string) ([]int64, bool) {
	t, ok := s.tensors[name]
	return t.dims, ok
}

// File names the file holding a tensor, for messages.
func (s *Safetensors) File(name string) string { return s.tensors[name].file }

// Params is the number of values in all tensors of the checkpoint.
func (s *Safetensors) Params() int64 {
	var n int64
	for _, t := range s.tensors {
		c := int64(1)
		for _, d := range t.dims {
			c *= d
		}
		n += c
	}
	return n
}

// Dtypes counts the checkpoint's tensors by dtype ("F32": 230, ...).
func (s *Safetensors) Dtypes() map[string]int {
	out := map[string]int{}
	for _, t := range s.tensors {
		out[t.dtype]++
	}
	return out
}

// Check says whether siglipd can read the tensor (its dtype), before the
// graph that uses it is written.
func (s *Safetensors) Check(name string) error {
	t, ok := s.tensors[name]
	if !ok {
		return fmt.Errorf("tensor %q is not in the checkpoint", name)
	}
	if dtypeSize(t.dtype) == 0 {
		return fmt.Errorf("weights %s: tensor %q is %s; siglipd reads F32, F16 and BF16 checkpoints", t.file, name, t.dtype)
	}
	return nil
}

// Float32 reads a tensor and converts it to float32.
func (s *Safetensors) Float32(name string) ([]float32, error) {
	if err := s.Check(name); err != nil {
		return nil, err
	}
	t := s.tensors[name]
	f, err := os.Open(t.file)
	if err != nil {
		return nil, fmt.Errorf("weights %s: %w", t.file, err)
	}
	defer f.Close()
	raw := make([]byte, t.end-t.begin)
	if _, err := f.ReadAt(raw, t.begin); err != nil {
		return nil, fmt.Errorf("weights %s: tensor %q: %w", t.file, name, err)
	}
	var out []float32
	switch t.dtype {
	case "F32":
		out = make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F16":
		out = make([]float32, len(raw)/2)
		for i := range out {
			out[i] = onnxpb.HalfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case "BF16":
		out = make([]float32, len(raw)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	}
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("weights %s: tensor %q: value %d is %v; the checkpoint is corrupt", t.file, name, i, v)
		}
	}
	return out, nil
}
