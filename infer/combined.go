package infer

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// A model in the combined layout is one graph: input_ids and pixel_values
// in; logits_per_image, logits_per_text and the L2-normalised text_embeds
// and image_embeds out. Feeding it a batch of frames would need a text
// batch too, and would run the text tower every time; so siglipd splits it
// into the two towers it runs — the nodes image_embeds needs, and those
// text_embeds needs — in memory, leaving the model's files as they are.

// Outputs of a combined graph the split towers end at. They are already
// unit length; siglipd normalises every embedding anyway.
const (
	combinedImageOutput = "image_embeds"
	combinedTextOutput  = "text_embeds"
)

// towerSource is where a tower's graph comes from: a file of its own
// (the towers layout), or a part of a combined graph.
type towerSource struct {
	path   string // the tower's file, or the combined graph's
	output string // the embedding output siglipd reads
	// For a tower split out of a combined graph: the graph, and the folder
	// its external data locations are relative to.
	split   *onnxpb.Subgraph
	dataDir string
}

// where names the source in messages.
func (s towerSource) where() string {
	if s.split == nil {
		return s.path
	}
	return fmt.Sprintf("%s (the part that computes %s)", s.path, s.output)
}

// towerSources are the vision and text towers of files.
func towerSources(files ModelFiles) (vision, text towerSource, err error) {
	if files.Layout != LayoutCombined {
		return towerSource{path: files.Vision, output: pooledOutput}, towerSource{path: files.Text, output: pooledOutput}, nil
	}
	g, err := onnxpb.ReadGraph(files.Full)
	if err != nil {
		return vision, text, fmt.Errorf("combined model %s: %w", files.Full, err)
	}
	relocate, dataDir, err := externalDataDir(g)
	if err != nil {
		return vision, text, err
	}
	var outs []string
	for _, o := range g.Outputs {
		outs = append(outs, o.Name)
	}
	split := func(output string) (towerSource, error) {
		s := towerSource{path: files.Full, output: output, dataDir: dataDir}
		if !contains(outs, output) {
			return s, fmt.Errorf("combined model %s: has no %s output (outputs: %s), which siglipd splits a tower at — is it a SigLIP model exported with transformers' SiglipModel outputs?",
				files.Full, output, strings.Join(outs, ", "))
		}
		s.split, err = g.Extract([]string{output}, relocate)
		if err != nil {
			return s, fmt.Errorf("combined model: %w", err)
		}
		return s, nil
	}
	if vision, err = split(combinedImageOutput); err != nil {
		return vision, text, err
	}
	text, err = split(combinedTextOutput)
	return vision, text, err
}

// externalDataDir is where ONNX Runtime is to find the external data of
// g's split graphs, and the locations to rewrite for it. ONNX Runtime
// reads a graph given in memory with its external data relative to a
// folder it is told, and refuses a file whose real path (symlinks
// resolved) lies outside that folder. In a Hugging Face cache snapshot
// every file is a symlink into blobs/, so the folder is the one the files
// really are in and each location becomes the real file's name there. For
// plain files nothing changes.
func externalDataDir(g *onnxpb.GraphFile) (relocate map[string]string, dir string, err error) {
	locs := g.ExternalFiles()
	dir = filepath.Dir(g.Path)
	if len(locs) == 0 {
		return nil, dir, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	real := make([]string, len(locs))
	for i, loc := range locs {
		p := filepath.Join(abs, loc)
		if real[i], err = filepath.EvalSymlinks(p); err != nil {
			return nil, "", fmt.Errorf("combined model %s: its weights %s: %w (is the model's download complete? siglipd pull fetches every file it names)",
				g.Path, p, unwrapPath(err))
		}
	}
	dir = filepath.Dir(real[0])
	for _, r := range real[1:] {
		for !strings.HasPrefix(r, dir+string(filepath.Separator)) && dir != filepath.Dir(dir) {
			dir = filepath.Dir(dir)
		}
	}
	relocate = map[string]string{}
	for i, loc := range locs {
		rel, err := filepath.Rel(dir, real[i])
		if err != nil {
			return nil, "", err
		}
		if rel != filepath.Clean(loc) {
			relocate[loc] = filepath.ToSlash(rel)
		}
	}
	return relocate, dir, nil
}

// unwrapPath drops the path an fs.PathError repeats.
func unwrapPath(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}

// ortInfos describes a split graph's inputs or outputs as ONNX Runtime
// would: symbolic dimensions are -1. ONNX's element type numbers are ONNX
// Runtime's.
func ortInfos(vis []onnxpb.ValueInfo) []ort.InputOutputInfo {
	out := make([]ort.InputOutputInfo, len(vis))
	for i, v := range vis {
		dims := make(ort.Shape, len(v.Shape))
		for j, d := range v.Shape {
			dims[j] = d.Value
			if d.Param != "" || d.Value <= 0 {
				dims[j] = -1
			}
		}
		out[i] = ort.InputOutputInfo{Name: v.Name, OrtValueType: ort.ONNXTypeTensor, Dimensions: dims,
			DataType: ort.TensorElementDataType(v.ElemType)}
	}
	return out
}

// tracedLogitParams finds logit_scale and logit_bias in the graph's logits
// head when no initializers carry those names: the exporter of current
// transformers names them after the node that reads them (onnx::Exp_607).
// The head is SiglipModel's
//
//	logits_per_text  = MatMul(text_embeds, imageᵀ) · Exp(logit_scale) + logit_bias
//	logits_per_image = Transpose(logits_per_text)
//
// traced back from either output through Transpose, Cast and Identity, the
// operands of Add and Mul in either order; a constant-folded Exp is a
// constant scale, taken back to its logarithm.
func tracedLogitParams(path string) (scale, bias *float64, err error) {
	g, err := onnxpb.ReadGraph(path)
	if err != nil {
		return nil, nil, err
	}
	through := func(name string) (onnxpb.NodeInfo, bool) {
		for range 8 {
			n, ok := g.Producer(name)
			if !ok {
				return n, false
			}
			switch n.Op {
			case "Transpose", "Cast", "Identity":
				name = n.Inputs[0]
				continue
			}
			return n, true
		}
		return onnxpb.NodeInfo{}, false
	}
	scalar := func(name string) (*float64, error) {
		v, ok, err := g.Constant(name)
		if err != nil || !ok || len(v) != 1 {
			return nil, err
		}
		return &v[0], nil
	}
	for _, out := range []string{"logits_per_text", "logits_per_image"} {
		add, ok := through(out)
		if !ok || add.Op != "Add" || len(add.Inputs) != 2 {
			continue
		}
		for i := range 2 {
			b, err := scalar(add.Inputs[i])
			if err != nil || b == nil {
				if err != nil {
					return nil, nil, err
				}
				continue
			}
			mul, ok := through(add.Inputs[1-i])
			if !ok || mul.Op != "Mul" || len(mul.Inputs) != 2 {
				continue
			}
			for j := range 2 {
				if exp, ok := g.Producer(mul.Inputs[j]); ok && exp.Op == "Exp" {
					if s, err := scalar(exp.Inputs[0]); err != nil || s != nil {
						return s, b, err
					}
				}
				if c, err := scalar(mul.Inputs[j]); err != nil || c != nil {
					if err != nil || *c <= 0 {
						return nil, nil, err
					}
					s := math.Log(*c)
					return &s, b, nil
				}
			}
		}
	}
	return nil, nil, nil
}
