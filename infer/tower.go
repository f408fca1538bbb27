package infer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

type towerKind int

const (
	visionTower towerKind = iota
	textTower
)

func (k towerKind) String() string {
	if k == visionTower {
		return "vision tower"
	}
	return "text tower"
}

// pooledOutput is the tower output siglipd uses: SigLIP's pooled embedding
// (the attention-pooling head's output for images, the head-projected last
// token for text), as named in the Hugging Face and Xenova exports. A tower
// split out of a combined graph ends at the same embedding, normalised
// (combined.go).
const pooledOutput = "pooler_output"

// tower is one SigLIP tower (vision_model.onnx or text_model.onnx): an ONNX
// Runtime session, or a model on an inference server (remote.go).
type tower struct {
	kind    towerKind
	path    string // the file, or the served model (for messages)
	session *ort.DynamicAdvancedSession
	remote  *remoteTower // set instead of session for the remote backend
	input   string       // pixel_values or input_ids
	output  string       // the embedding output: pooledOutput, or a combined graph's image_embeds / text_embeds
	// inType is the input's element type: float32 or float16 pixels,
	// int64 or int32 ids.
	inType  ort.TensorElementDataType
	inDims  ort.Shape
	outType ort.TensorElementDataType
	outDim  int
	// mask names an attention_mask input some text exports declare; it is
	// fed all ones, which is what SigLIP means (padding is real input).
	mask string

	mu     sync.Mutex
	inputs map[int]*batchInput // by batch size: preallocated, reused
}

// batchInput is a batch's input tensor(s), allocated once per batch size so
// frames are written straight into ONNX Runtime's memory.
type batchInput struct {
	values []ort.Value
	// out is the preallocated pooler_output when its size is known
	// (always for float16: onnxruntime_go copies an auto-allocated float16
	// output with its element count as the byte count, losing half).
	out ort.Value
	f32 []float32 // pixel data, when the model takes float32
	f16 []uint16  // pixel data, when it takes float16 (f32 is scratch)
	i64 []int64
	i32 []int32
	// shape is the input's shape (remote towers, which send it).
	shape ort.Shape
}

func openTower(src towerSource, kind towerKind, opts Options) (*tower, string, error) {
	var ins, outs []ort.InputOutputInfo
	if src.split != nil {
		// The split graph's own inputs and outputs, as ONNX Runtime would
		// report them, without loading its weights a second time.
		ins, outs = ortInfos(src.split.Inputs), ortInfos(src.split.Outputs)
	} else {
		infoOpts, err := ort.NewSessionOptions()
		if err != nil {
			return nil, "", err
		}
		_ = infoOpts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll)
		ins, outs, err = ort.GetInputOutputInfoWithOptions(src.path, infoOpts)
		infoOpts.Destroy()
		if err != nil {
			return nil, "", fmt.Errorf("%s %s: cannot load it as ONNX: %v", kind, src.path, err)
		}
	}
	t, err := describeTower(kind, src.where(), ins, outs, src.output)
	if err != nil {
		return nil, "", err
	}
	sessOpts, device, err := sessionOptions(opts)
	if err != nil {
		return nil, "", err
	}
	defer sessOpts.Destroy()
	inputNames := []string{t.input}
	if t.mask != "" {
		inputNames = append(inputNames, t.mask)
	}
	if src.split == nil {
		t.session, err = ort.NewDynamicAdvancedSession(src.path, inputNames, []string{t.output}, sessOpts)
	} else if err = sessOpts.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", src.dataDir); err == nil {
		t.session, err = ort.NewDynamicAdvancedSessionWithONNXData(src.split.Model, inputNames, []string{t.output}, sessOpts)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: ONNX Runtime could not create a session: %v", kind, t.path, err)
	}
	return t, device, nil
}

// describeTower checks a tower's inputs and outputs — from the ONNX file,
// or from an inference server's metadata — and returns the tower they
// describe, without a session. where names the file or the served model;
// output is the embedding output to read (pooledOutput but for towers
// split out of a combined graph).
func describeTower(kind towerKind, where string, ins, outs []ort.InputOutputInfo, output string) (*tower, error) {
	wantIn := "pixel_values"
	if kind == textTower {
		wantIn = "input_ids"
	}
	t := &tower{kind: kind, path: where, output: output, inputs: map[int]*batchInput{}}
	for _, in := range ins {
		if in.Name == wantIn {
			t.input, t.inType, t.inDims = in.Name, in.DataType, in.Dimensions
		}
	}
	if t.input == "" {
		return nil, fmt.Errorf("%s %s: has no %s input (inputs: %s) — is it the right model?", kind, where, wantIn, strings.Join(inputNames(ins), ", "))
	}
	for _, in := range ins {
		switch {
		case in.Name == wantIn:
		case kind == textTower && in.Name == "attention_mask":
			t.mask = in.Name
		default:
			return nil, fmt.Errorf("%s %s: unexpected input %q (inputs: %s; want %s)", kind, where, in.Name, strings.Join(inputNames(ins), ", "), wantIn)
		}
	}
	switch {
	case kind == visionTower && (t.inType == ort.TensorElementDataTypeFloat || t.inType == ort.TensorElementDataTypeFloat16) && len(t.inDims) == 4 && (t.inDims[1] == 3 || t.inDims[1] < 0):
	case kind == textTower && (t.inType == ort.TensorElementDataTypeInt64 || t.inType == ort.TensorElementDataTypeInt32) && len(t.inDims) == 2:
	default:
		return nil, fmt.Errorf("%s %s: input %s is %s %v, not a SigLIP %s input", kind, where, t.input, t.inType, t.inDims, map[towerKind]string{visionTower: "[batch, 3, height, width] float", textTower: "[batch, length] integer"}[kind])
	}
	var outNames []string
	for _, o := range outs {
		outNames = append(outNames, o.Name)
		if o.Name == output {
			t.outType = o.DataType
			if len(o.Dimensions) == 2 && o.Dimensions[1] > 0 {
				t.outDim = int(o.Dimensions[1])
			}
		}
	}
	if t.outType == 0 {
		return nil, fmt.Errorf("%s %s: has no %s output (outputs: %s)", kind, where, output, strings.Join(outNames, ", "))
	}
	if t.outType != ort.TensorElementDataTypeFloat && t.outType != ort.TensorElementDataTypeFloat16 {
		return nil, fmt.Errorf("%s %s: output %s is %s, want float or float16", kind, where, output, t.outType)
	}
	if t.outType == ort.TensorElementDataTypeFloat16 && t.outDim == 0 {
		return nil, fmt.Errorf("%s %s: float16 output %s has no fixed size", kind, where, output)
	}
	return t, nil
}

func inputNames(infos []ort.InputOutputInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Name)
	}
	return out
}

// sessionOptions builds ONNX Runtime options and appends the execution
// provider for opts.Device. A provider the library lacks is an error naming
// the provider and the library — except for "auto", which falls back to CPU.
func sessionOptions(opts Options) (*ort.SessionOptions, string, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*ort.SessionOptions, string, error) {
		so.Destroy()
		return nil, "", err
	}
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return fail(err)
		}
	}
	if err := so.AddSessionConfigEntry(SpinningEntry(opts.AllowSpinning)); err != nil {
		return fail(err)
	}
	level := map[string]ort.GraphOptimizationLevel{
		"disabled": ort.GraphOptimizationLevelDisableAll, "basic": ort.GraphOptimizationLevelEnableBasic,
		"extended": ort.GraphOptimizationLevelEnableExtended, "all": ort.GraphOptimizationLevelEnableAll, "": ort.GraphOptimizationLevelEnableAll,
	}
	lv, ok := level[opts.GraphOptimization]
	if !ok {
		return fail(fmt.Errorf("graph optimization %q: want disabled, basic, extended or all", opts.GraphOptimization))
	}
	if err := so.SetGraphOptimizationLevel(lv); err != nil {
		return fail(err)
	}
	device := opts.Device
	lib := runtimeState.path
	switch {
	case device == "cpu":
	case device == "auto":
		if err := appendCUDA(so, 0); err != nil {
			opts.Logger.Info("no GPU execution provider in the ONNX Runtime library; using CPU", "library", lib, "reason", firstLine(err))
			device = "cpu"
		} else {
			device = "cuda:0"
		}
	case device == "cuda" || strings.HasPrefix(device, "cuda:"):
		id := 0
		if s, ok := strings.CutPrefix(device, "cuda:"); ok {
			if id, err = strconv.Atoi(s); err != nil {
				return fail(fmt.Errorf("device %q: bad CUDA device number", device))
			}
		}
		if err := appendCUDA(so, id); err != nil {
			return fail(fmt.Errorf("device %s: the ONNX Runtime library %s has no usable CUDA execution provider: %s", device, lib, firstLine(err)))
		}
	case device == "tensorrt":
		trt, err := ort.NewTensorRTProviderOptions()
		if err == nil {
			err = so.AppendExecutionProviderTensorRT(trt)
			trt.Destroy()
		}
		if err != nil {
			return fail(fmt.Errorf("device tensorrt: the ONNX Runtime library %s has no usable TensorRT execution provider: %s", lib, firstLine(err)))
		}
		// Nodes TensorRT cannot take run on CUDA rather than the CPU.
		_ = appendCUDA(so, 0)
	case device == "openvino":
		if err := so.AppendExecutionProviderOpenVINO(map[string]string{}); err != nil {
			return fail(fmt.Errorf("device openvino: the ONNX Runtime library %s has no usable OpenVINO execution provider: %s", lib, firstLine(err)))
		}
	default:
		return fail(fmt.Errorf("device %q: want cpu, auto, cuda, cuda:N, tensorrt or openvino", device))
	}
	return so, device, nil
}

func appendCUDA(so *ort.SessionOptions, id int) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(id)}); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(cuda)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	return s
}

func (t *tower) close() error {
	if t != nil && t.remote != nil {
		t.remote = nil // the Model closes the shared client
		return nil
	}
	if t == nil || t.session == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, in := range t.inputs {
		for _, v := range in.values {
			errs = append(errs, v.Destroy())
		}
		if in.out != nil {
			errs = append(errs, in.out.Destroy())
		}
	}
	t.inputs = nil
	errs = append(errs, t.session.Destroy())
	t.session = nil
	return errors.Join(errs...)
}

// batch returns the preallocated input of batch size n, creating it once.
// For images the caller writes n·3·H·W floats into in.f32; for text n·L ids
// into in.i64 (or i32).
func (t *tower) batch(n int, perItem int64) (*batchInput, error) {
	if t.remote != nil {
		return t.remoteBatch(n, perItem)
	}
	if t.session == nil {
		return nil, fmt.Errorf("%s %s: the model is closed", t.kind, t.path)
	}
	if in, ok := t.inputs[n]; ok {
		return in, nil
	}
	shape, err := t.batchShape(n, perItem)
	if err != nil {
		return nil, err
	}
	in := &batchInput{}
	var v ort.Value
	switch t.inType {
	case ort.TensorElementDataTypeFloat:
		var tt *ort.Tensor[float32]
		if tt, err = ort.NewEmptyTensor[float32](shape); err == nil {
			in.f32, v = tt.GetData(), tt
		}
	case ort.TensorElementDataTypeFloat16:
		buf := make([]byte, 2*shape.FlattenedSize())
		var ct *ort.CustomDataTensor
		if ct, err = ort.NewCustomDataTensor(shape, buf, ort.TensorElementDataTypeFloat16); err == nil {
			in.f16 = bytesAsUint16(ct.GetData())
			in.f32 = make([]float32, shape.FlattenedSize())
			v = ct
		}
	case ort.TensorElementDataTypeInt64:
		var tt *ort.Tensor[int64]
		if tt, err = ort.NewEmptyTensor[int64](shape); err == nil {
			in.i64, v = tt.GetData(), tt
		}
	case ort.TensorElementDataTypeInt32:
		var tt *ort.Tensor[int32]
		if tt, err = ort.NewEmptyTensor[int32](shape); err == nil {
			in.i32, v = tt.GetData(), tt
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: allocating a batch of %d: %w", t.kind, t.path, n, err)
	}
	in.values = []ort.Value{v}
	if t.mask != "" {
		ones := make([]int64, shape.FlattenedSize())
		for i := range ones {
			ones[i] = 1
		}
		mask, err := ort.NewTensor(shape, ones)
		if err != nil {
			v.Destroy()
			return nil, err
		}
		in.values = append(in.values, mask)
	}
	if t.outDim > 0 {
		outShape := ort.NewShape(int64(n), int64(t.outDim))
		if t.outType == ort.TensorElementDataTypeFloat16 {
			in.out, err = ort.NewCustomDataTensor(outShape, make([]byte, 2*n*t.outDim), ort.TensorElementDataTypeFloat16)
		} else {
			in.out, err = ort.NewEmptyTensor[float32](outShape)
		}
		if err != nil {
			for _, v := range in.values {
				v.Destroy()
			}
			return nil, err
		}
	}
	t.inputs[n] = in
	return in, nil
}

// batchShape is the input shape of a batch of n: the tower's dimensions
// with the dynamic ones filled in.
func (t *tower) batchShape(n int, perItem int64) (ort.Shape, error) {
	shape := make(ort.Shape, len(t.inDims))
	copy(shape, t.inDims)
	shape[0] = int64(n)
	for i := 1; i < len(shape); i++ {
		if shape[i] <= 0 {
			// A dynamic dimension: known from the caller (64 tokens, or the
			// preprocessor's image size for a fully dynamic vision input).
			switch {
			case t.kind == textTower:
				shape[i] = perItem
			case i == 1:
				shape[i] = 3
			default:
				return nil, fmt.Errorf("%s %s: input dimension %d is dynamic", t.kind, t.path, i)
			}
		}
	}
	return shape, nil
}

// run runs the session on a filled batch input and returns the pooled
// embeddings, one row per item, as float32.
func (t *tower) run(in *batchInput, n int) ([][]float32, error) {
	if in.f16 != nil {
		for i, f := range in.f32 {
			in.f16[i] = onnxpb.FloatToHalf(f)
		}
	}
	if t.remote != nil {
		return t.remoteRun(in, n)
	}
	outs := []ort.Value{in.out} // nil: ONNX Runtime allocates it
	if err := t.session.Run(in.values, outs); err != nil {
		return nil, fmt.Errorf("%s %s: %w", t.kind, t.path, err)
	}
	if in.out == nil {
		defer outs[0].Destroy()
	}
	shape := outs[0].GetShape()
	if len(shape) != 2 || int(shape[0]) != n {
		return nil, fmt.Errorf("%s %s: %s has shape %v, want [%d, dim]", t.kind, t.path, t.output, shape, n)
	}
	dim := int(shape[1])
	flat := make([]float32, n*dim)
	switch o := outs[0].(type) {
	case *ort.Tensor[float32]:
		copy(flat, o.GetData())
	case *ort.CustomDataTensor:
		for i, h := range bytesAsUint16(o.GetData()) {
			flat[i] = onnxpb.HalfToFloat(h)
		}
	default:
		return nil, fmt.Errorf("%s %s: %s has unsupported type %T", t.kind, t.path, t.output, outs[0])
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return rows, nil
}

// bytesAsUint16 views float16 tensor bytes as uint16s (little-endian hosts,
// which is every platform ONNX Runtime ships for).
func bytesAsUint16(b []byte) []uint16 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// SpinningEntry is the session config entry (key, value) that lets idle
// intra-op threads spin or makes them sleep (Options.AllowSpinning); siglipd
// bench gives its bare sessions the same.
func SpinningEntry(allow bool) (key, value string) {
	if allow {
		return "session.intra_op.allow_spinning", "1"
	}
	return "session.intra_op.allow_spinning", "0"
}
