package infer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/siglipd/siglipd/infer/oip"
	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Remote runs the towers on an Open Inference Protocol server (NVIDIA
// Triton, KServe, Seldon MLServer) instead of in this process. Everything
// else — the tokenizer, the image preprocessing, the logit parameters and
// the scoring — stays here, read from the model folder as for the local
// backend, so the server only sees tensors.
type Remote struct {
	Server oip.Options
	// VisionModel and TextModel are the served models' names; Version is
	// their version ("" lets the server choose).
	VisionModel, TextModel, Version string
	// Timeout bounds one call (default 10s): a server that does not answer
	// in time counts as down for that batch.
	Timeout time.Duration
}

// ServerState is the inference server's state as the last calls found it.
type ServerState struct {
	Backend string // "local" or "remote"
	Server  string // host:port of the remote server
	Up      bool
	Since   time.Time // when Up last changed (the start for a server never down)
	// LastError is the last failed call's error, kept after recovery.
	LastError string
	Failures  uint64 // failed calls since start
}

// ServerUnavailable reports whether err is a remote tower's server that
// could not be reached or did not answer in time: a state that passes,
// unlike a server that refuses the model or its inputs.
func ServerUnavailable(err error) bool { return oip.Unavailable(err) || errors.Is(err, errNotReady) }

// remoteTower is a tower served by an inference server.
type remoteTower struct {
	client  *oip.Client
	model   string
	version string
	timeout time.Duration
	state   *serverState
	// inType/outType as the protocol names them (FP32, FP16, INT64, INT32).
	inType, maskType string
}

// serverState is the state both towers' calls update.
type serverState struct {
	mu sync.Mutex
	st ServerState
}

func (s *serverState) get() ServerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// record notes a call's outcome: only unreachable or silent servers are
// down; a server that refuses a request is up (and the error is kept).
func (s *serverState) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := err == nil || !ServerUnavailable(err)
	if err != nil {
		s.st.Failures++
		s.st.LastError = err.Error()
	}
	if up != s.st.Up {
		s.st.Up, s.st.Since = up, time.Now()
	}
}

// v2Types maps the protocol's datatypes to ONNX Runtime's, for the ones a
// SigLIP tower may take or give.
var v2Types = map[string]ort.TensorElementDataType{
	"FP32": ort.TensorElementDataTypeFloat, "FP16": ort.TensorElementDataTypeFloat16,
	"INT64": ort.TensorElementDataTypeInt64, "INT32": ort.TensorElementDataTypeInt32,
}

func v2Name(t ort.TensorElementDataType) string {
	for k, v := range v2Types {
		if v == t {
			return k
		}
	}
	return t.String()
}

// openRemote connects to the server of opts.Remote and describes both
// towers from the served models' metadata. An unreachable server gives an
// error for which ServerUnavailable is true.
func (m *Model) openRemote() error {
	r := m.opts.Remote
	client, err := oip.Dial(r.Server)
	if err != nil {
		return err
	}
	if r.Timeout <= 0 {
		r.Timeout = 10 * time.Second
	}
	m.client = client
	m.state = &serverState{st: ServerState{Backend: "remote", Server: client.Target(), Up: true, Since: time.Now()}}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	if m.vision, err = m.remoteTower(ctx, visionTower, r.VisionModel); err != nil {
		m.state.record(err)
		return err
	}
	if m.text, err = m.remoteTower(ctx, textTower, r.TextModel); err != nil {
		m.state.record(err)
		return err
	}
	m.device = "remote " + client.Target()
	return nil
}

func (m *Model) remoteTower(ctx context.Context, kind towerKind, name string) (*tower, error) {
	r := m.opts.Remote
	where := fmt.Sprintf("model %q on %s", name, m.client.Target())
	if r.Version != "" {
		where = fmt.Sprintf("model %q version %s on %s", name, r.Version, m.client.Target())
	}
	// Metadata first: a server that does not know the name says so
	// there, while some answer "not ready" for any name.
	md, err := m.client.ModelMetadata(ctx, name, r.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, where, err)
	}
	ready, err := m.client.ModelReady(ctx, name, r.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, where, err)
	}
	if !ready {
		return nil, fmt.Errorf("%s %s: %w", kind, where, errNotReady)
	}
	convert := func(ts []oip.TensorMetadata) ([]ort.InputOutputInfo, error) {
		out := make([]ort.InputOutputInfo, len(ts))
		for i, t := range ts {
			typ, ok := v2Types[t.Datatype]
			if !ok && (t.Name == pooledOutput || t.Name == "pixel_values" || t.Name == "input_ids" || t.Name == "attention_mask") {
				return nil, fmt.Errorf("%s %s: %s is %s, which siglipd does not send or read (want FP32, FP16, INT64 or INT32)", kind, where, t.Name, t.Datatype)
			}
			out[i] = ort.InputOutputInfo{Name: t.Name, DataType: typ, Dimensions: ort.Shape(t.Shape)}
		}
		return out, nil
	}
	ins, err := convert(md.Inputs)
	if err != nil {
		return nil, err
	}
	outs, err := convert(md.Outputs)
	if err != nil {
		return nil, err
	}
	t, err := describeTower(kind, where, ins, outs, pooledOutput)
	if err != nil {
		return nil, err
	}
	t.remote = &remoteTower{client: m.client, model: name, version: r.Version, timeout: r.Timeout, state: m.state, inType: v2Name(t.inType)}
	for _, in := range md.Inputs {
		if in.Name == t.mask {
			t.remote.maskType = in.Datatype
		}
	}
	return t, nil
}

// errNotReady is a served model that is not ready yet: a passing state,
// like a server still starting.
var errNotReady = errors.New("the server has it but it is not ready (still loading?)")

// remoteBatch allocates a batch's input in Go memory: it is sent as the
// request's raw contents.
func (t *tower) remoteBatch(n int, perItem int64) (*batchInput, error) {
	if in, ok := t.inputs[n]; ok {
		return in, nil
	}
	shape, err := t.batchShape(n, perItem)
	if err != nil {
		return nil, err
	}
	size := shape.FlattenedSize()
	in := &batchInput{shape: shape}
	switch t.inType {
	case ort.TensorElementDataTypeFloat:
		in.f32 = make([]float32, size)
	case ort.TensorElementDataTypeFloat16:
		in.f32, in.f16 = make([]float32, size), make([]uint16, size)
	case ort.TensorElementDataTypeInt64:
		in.i64 = make([]int64, size)
	case ort.TensorElementDataTypeInt32:
		in.i32 = make([]int32, size)
	}
	t.inputs[n] = in
	return in, nil
}

// remoteRun sends a filled batch to the server and returns the pooled
// embeddings, one row per item.
func (t *tower) remoteRun(in *batchInput, n int) ([][]float32, error) {
	r := t.remote
	var raw []byte
	switch {
	case in.f16 != nil:
		raw = asBytes(in.f16)
	case in.f32 != nil:
		raw = asBytes(in.f32)
	case in.i64 != nil:
		raw = asBytes(in.i64)
	default:
		raw = asBytes(in.i32)
	}
	inputs := []oip.Tensor{{Name: t.input, Datatype: r.inType, Shape: in.shape, Raw: raw}}
	if t.mask != "" {
		inputs = append(inputs, oip.Tensor{Name: t.mask, Datatype: r.maskType, Shape: in.shape, Raw: onesRaw(r.maskType, int(in.shape.FlattenedSize()))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	outs, err := r.client.Infer(ctx, r.model, r.version, inputs, []string{pooledOutput})
	r.state.record(err)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t.kind, t.path, err)
	}
	var out *oip.Tensor
	for i := range outs {
		if outs[i].Name == pooledOutput {
			out = &outs[i]
		}
	}
	switch {
	case out == nil:
		return nil, fmt.Errorf("%s %s: the answer has no %s", t.kind, t.path, pooledOutput)
	case len(out.Shape) != 2 || int(out.Shape[0]) != n:
		return nil, fmt.Errorf("%s %s: %s has shape %v, want [%d, dim]", t.kind, t.path, pooledOutput, out.Shape, n)
	}
	dim := int(out.Shape[1])
	var flat []float32
	switch out.Datatype {
	case "FP32":
		var err error
		if flat, err = oip.Float32s(out.Raw); err != nil {
			return nil, fmt.Errorf("%s %s: %w", t.kind, t.path, err)
		}
	case "FP16":
		flat = make([]float32, n*dim)
		for i := range flat {
			flat[i] = onnxpb.HalfToFloat(uint16(out.Raw[2*i]) | uint16(out.Raw[2*i+1])<<8)
		}
	default:
		return nil, fmt.Errorf("%s %s: %s is %s, want FP32 or FP16", t.kind, t.path, pooledOutput, out.Datatype)
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return rows, nil
}

// asBytes views a slice of numbers as its bytes, which are the protocol's
// little-endian raw contents on every platform siglipd runs on.
func asBytes[T float32 | uint16 | int64 | int32](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

func onesRaw(datatype string, n int) []byte {
	if datatype == "INT32" {
		v := make([]int32, n)
		for i := range v {
			v[i] = 1
		}
		return asBytes(v)
	}
	v := make([]int64, n)
	for i := range v {
		v[i] = 1
	}
	return asBytes(v)
}

// Probe asks the remote backend's server whether the vision tower is ready,
// and notes the answer in Server(): so a server that went away (or came
// back) shows while no frame is scored, e.g. with every camera still. It
// is a no-op for the local backend.
func (m *Model) Probe(ctx context.Context) error {
	if m.client == nil {
		return nil
	}
	ready, err := m.client.ModelReady(ctx, m.opts.Remote.VisionModel, m.opts.Remote.Version)
	if err == nil && !ready {
		err = fmt.Errorf("vision tower %s: %w", m.vision.path, errNotReady)
	}
	m.state.record(err)
	return err
}

// Server is the inference server's state: always up for the local backend.
func (m *Model) Server() ServerState {
	if m.state == nil {
		return ServerState{Backend: "local", Up: true, Since: m.opened}
	}
	return m.state.get()
}

// closeClient closes the remote backend's connection.
func (m *Model) closeClient() error {
	if m.client == nil {
		return nil
	}
	err := m.client.Close()
	m.client = nil
	return err
}
