package onnxpb

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
)

// ParameterCount is the number of values in the initializers of the model
// file at path (the product of each one's dims), read from the tensors'
// headers: their data, inline or external, is skipped. It is what a
// model's "parameter count" means, give or take a few shape constants.
func ParameterCount(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	r := &reader{f: f, br: bufio.NewReaderSize(f, 64<<10), dir: filepath.Dir(path)}
	var total int64
	err = r.fields(st.Size(), func(num protowire.Number, typ protowire.Type, length int64) (bool, error) {
		if num != 7 || typ != protowire.BytesType { // 7: ModelProto.graph
			return false, nil
		}
		return true, r.fields(r.pos+length, func(num protowire.Number, typ protowire.Type, length int64) (bool, error) {
			if num != 5 || typ != protowire.BytesType { // 5: GraphProto.initializer
				return false, nil
			}
			t, err := r.tensor(r.pos + length)
			if err != nil {
				return true, err
			}
			n := int64(1)
			for _, d := range t.dims {
				if d < 0 {
					return true, fmt.Errorf("initializer %q: negative dimension %d", t.name, d)
				}
				n *= d
			}
			total += n
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("%s: not a valid ONNX file: %w", path, err)
	}
	return total, nil
}
