package testmodel

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
)

// writeSafetensors writes the weights under transformers' SiglipModel
// state-dict names (the pooling head's q/k/v already packed as in_proj).
func writeSafetensors(path string, w *params) error {
	type entry struct {
		name string
		dims []int64
		data []float32
	}
	var entries []entry
	for _, name := range w.names() {
		p := w.get(name)
		entries = append(entries, entry{name, p.dims, p.data})
	}

	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var offset int64
	for _, e := range entries {
		n := int64(len(e.data)) * 4
		header[e.name] = map[string]any{"dtype": "F32", "shape": e.dims, "data_offsets": []int64{offset, offset + n}}
		offset += n
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 { // the format pads the header to 8 bytes with spaces
		hb = append(hb, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	binary.Write(bw, binary.LittleEndian, uint64(len(hb)))
	bw.Write(hb)
	var buf [4]byte
	for _, e := range entries {
		for _, v := range e.data {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			bw.Write(buf[:])
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
