package testmodel

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"strings"
)

// writeSafetensors writes the weights under transformers' SiglipModel
// state-dict names. The pooling head's q/k/v projections are stored
// separately here but as one in_proj matrix in torch.nn.MultiheadAttention.
func writeSafetensors(path string, w *params) error {
	type entry struct {
		name string
		dims []int64
		data []float32
	}
	var entries []entry
	const head = "vision_model.head.attention."
	for _, name := range w.names() {
		if rest, ok := strings.CutPrefix(name, head); ok && (strings.HasPrefix(rest, "q.") || strings.HasPrefix(rest, "k.") || strings.HasPrefix(rest, "v.")) {
			continue
		}
		p := w.get(name)
		entries = append(entries, entry{name, p.dims, p.data})
	}
	for _, kind := range []string{"weight", "bias"} {
		q, k, v := w.get(head+"q."+kind), w.get(head+"k."+kind), w.get(head+"v."+kind)
		dims := append([]int64{q.dims[0] * 3}, q.dims[1:]...)
		data := append(append(append([]float32{}, q.data...), k.data...), v.data...)
		entries = append(entries, entry{head + "in_proj_" + kind, dims, data})
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
