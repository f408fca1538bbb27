package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/tokenizer"
)

// Layout is how a model folder holds a SigLIP model.
type Layout string

const (
	// LayoutTowers is the Xenova layout (Xenova/siglip-base-patch16-224,
	// onnx-community/siglip2-base-patch16-224-ONNX): one ONNX file per
	// tower, onnx/vision_model<suffix>.onnx and onnx/text_model<suffix>.onnx,
	// and onnx/model<suffix>.onnx, read only for logit_scale and logit_bias.
	LayoutTowers Layout = "towers"
	// LayoutCombined is one graph of both towers and the logits,
	// onnx/model<suffix>.onnx (onnx-community/siglip-so400m-patch14-384-ONNX,
	// its weights in onnx/model.onnx_data): siglipd splits it into a vision
	// and a text tower (combined.go).
	LayoutCombined Layout = "combined"
	// LayoutCheckpoint is transformers' own: config.json and
	// model.safetensors (or model.safetensors.index.json and its shards),
	// no onnx/ folder (google/siglip-so400m-patch14-384).
	LayoutCheckpoint Layout = "checkpoint"
)

// ModelFiles are the files of a SigLIP model folder in the Hugging Face
// layouts (see Layout):
//
//	config.json  preprocessor_config.json  tokenizer.json  tokenizer_config.json
//	towers:      onnx/vision_model<suffix>.onnx  onnx/text_model<suffix>.onnx  [onnx/model<suffix>.onnx]
//	combined:    onnx/model<suffix>.onnx  [onnx/model<suffix>.onnx_data ...]
//	checkpoint:  model.safetensors | model.safetensors.index.json + shards
//
// The suffix is "" for fp32, "_fp16", "_quantized", ... (configs.Variants).
type ModelFiles struct {
	Dir             string
	Layout          Layout
	Config          string
	Preprocessor    string
	Tokenizer       string
	TokenizerConfig string // optional
	Vision          string // towers layout only
	Text            string // towers layout only
	// Full is onnx/model<suffix>.onnx: in the towers layout optional and
	// only read for logit_scale / logit_bias; in the combined layout the
	// model itself.
	Full string
}

// FindModelFiles resolves the files of the model folder dir for an ONNX file
// suffix, tells its layout, and checks that the files it requires exist.
// The error names the first missing file by its full path — or, for a
// folder in none of the layouts, what each layout would need.
func FindModelFiles(dir, suffix string) (ModelFiles, error) {
	return findModelFiles(dir, suffix, true)
}

// findModelFiles is FindModelFiles; without towers (the remote backend)
// the tower files need not exist.
func findModelFiles(dir, suffix string, towers bool) (ModelFiles, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ModelFiles{}, fmt.Errorf("model folder %s: does not exist", dir)
	case err != nil:
		return ModelFiles{}, fmt.Errorf("model folder %s: %w", dir, errors.Unwrap(err))
	case !st.IsDir():
		return ModelFiles{}, fmt.Errorf("model folder %s: is a file, not a folder in a Hugging Face model layout", dir)
	}
	f := ModelFiles{
		Dir:             dir,
		Config:          filepath.Join(dir, "config.json"),
		Preprocessor:    filepath.Join(dir, "preprocessor_config.json"),
		Tokenizer:       filepath.Join(dir, "tokenizer.json"),
		TokenizerConfig: filepath.Join(dir, "tokenizer_config.json"),
		Vision:          filepath.Join(dir, "onnx", "vision_model"+suffix+".onnx"),
		Text:            filepath.Join(dir, "onnx", "text_model"+suffix+".onnx"),
		Full:            filepath.Join(dir, "onnx", "model"+suffix+".onnx"),
	}
	f.Layout, err = detectLayout(f, suffix, towers)
	if err != nil {
		return ModelFiles{}, err
	}
	required := []struct{ path, what string }{{f.Config, "model config"}, {f.Preprocessor, "image preprocessor config"}}
	switch f.Layout {
	case LayoutTowers:
		required = append(required, struct{ path, what string }{f.Tokenizer, "tokenizer"})
		if towers {
			required = append(required, []struct{ path, what string }{{f.Vision, "vision tower"}, {f.Text, "text tower"}}...)
		}
	case LayoutCombined:
		required = append(required, struct{ path, what string }{f.Tokenizer, "tokenizer"})
		f.Vision, f.Text = "", ""
	case LayoutCheckpoint:
		// The checkpoint's tokenizer may be spiece.model; what the built
		// model needs is checked when it is built.
		f.Vision, f.Text, f.Full = "", "", ""
	}
	for _, req := range required {
		if _, err := os.Stat(req.path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return ModelFiles{}, fmt.Errorf("%s %s: missing from the model folder", req.what, req.path)
			}
			return ModelFiles{}, fmt.Errorf("%s %s: %w", req.what, req.path, errors.Unwrap(err))
		}
	}
	if !fileExists(f.TokenizerConfig) {
		f.TokenizerConfig = ""
	}
	if f.Layout == LayoutTowers && !fileExists(f.Full) {
		f.Full = ""
	}
	return f, nil
}

// detectLayout tells f's layout: the towers of the variant, else its
// combined graph, else — with no onnx/ folder at all — a checkpoint. One
// tower file without the other is the towers layout missing a file (the
// caller names it). Without towers (the remote backend) a folder with
// neither is the towers layout: only its config, tokenizer and logit
// parameters are read.
func detectLayout(f ModelFiles, suffix string, towers bool) (Layout, error) {
	switch {
	case fileExists(f.Vision) || fileExists(f.Text):
		return LayoutTowers, nil
	case fileExists(f.Full):
		return LayoutCombined, nil
	case !towers:
		return LayoutTowers, nil
	}
	onnxDir := filepath.Join(f.Dir, "onnx")
	_, onnxErr := os.Stat(onnxDir)
	weights := filepath.Join(f.Dir, "model.safetensors")
	index := filepath.Join(f.Dir, "model.safetensors.index.json")
	if onnxErr != nil && (fileExists(weights) || fileExists(index)) {
		return LayoutCheckpoint, nil
	}
	variant := ""
	if suffix != "" {
		variant = fmt.Sprintf(" of the variant %q", suffix)
	}
	why := fmt.Sprintf("no model%s: it has neither %s and %s (one file per tower, as Xenova's exports), nor %s "+
		"(one graph of both towers, as onnx-community's exports)", variant, f.Vision, f.Text, f.Full)
	if onnxErr != nil {
		why += fmt.Sprintf(", nor %s or %s (a transformers checkpoint, as google's repositories)", weights, index)
	} else {
		why += fmt.Sprintf(" (with %s present it is not read as a transformers checkpoint)", onnxDir)
	}
	return "", fmt.Errorf("model folder %s: %s; siglipd runs these three layouts", f.Dir, why)
}

// fromCheckpoint turns a folder in the checkpoint layout into the model
// files siglipd runs: the ONNX towers infer/convert builds from it, once,
// next to it (convert.OutputDir) and reused after. It is the one place
// where the checkpoint layout meets the rest of infer.
func fromCheckpoint(f ModelFiles, opts Options) (ModelFiles, error) {
	if err := checkpointVariant(f, opts.Suffix); err != nil {
		return ModelFiles{}, err
	}
	start := time.Now()
	res, err := convert.Ensure(f.Dir, opts.StateDir, convertOptions(opts))
	if err != nil {
		return ModelFiles{}, err
	}
	if !res.Reused {
		opts.Logger.Info("built ONNX towers from the checkpoint; later starts reuse them", "checkpoint", f.Dir,
			"folder", res.Dir, "parameters", res.Params, "took", time.Since(start).Round(time.Millisecond))
	}
	return findModelFiles(res.Dir, "", opts.Remote == nil)
}

// checkpointVariant refuses an ONNX variant for a checkpoint: its towers
// are built in float32 whatever the weights' type on disk.
func checkpointVariant(f ModelFiles, suffix string) error {
	if suffix == "" {
		return nil
	}
	return fmt.Errorf("model folder %s: a transformers checkpoint, whose towers siglipd builds in float32; the variant %q "+
		"names ONNX files it does not have: use variant fp32 (the default)", f.Dir, strings.TrimPrefix(suffix, "_"))
}

// convertOptions are the build options for opts: standard operators only
// when another server runs the towers (the remote backend); spiece.model
// read by siglipd's own SentencePiece reader.
func convertOptions(opts Options) convert.Options {
	return convert.Options{
		Plain: opts.Remote != nil,
		SentencePiece: func(spiece string) ([]byte, error) {
			cfg := filepath.Join(filepath.Dir(spiece), "tokenizer_config.json")
			if !fileExists(cfg) {
				cfg = ""
			}
			return tokenizer.SentencePieceToJSON(spiece, cfg)
		},
	}
}

// checkCheckpoint is --check's view of a checkpoint: everything Build
// checks, nothing written. Built already, the built folder is checked as
// any other; not yet, the checkpoint's config and weights describe it.
func checkCheckpoint(f ModelFiles, opts Options) (built string, d Description, err error) {
	if err := checkpointVariant(f, opts.Suffix); err != nil {
		return "", d, err
	}
	res, err := convert.Check(f.Dir, convertOptions(opts))
	if err != nil {
		return "", d, err
	}
	if res.Reused {
		return res.Dir, d, nil
	}
	c := res.Config
	d = Description{Family: "SigLIP", Size: sizeNames[c.Vision.Hidden], PatchSize: c.PatchSize,
		ImageWidth: c.ImageWidth, ImageHeight: c.ImageHeight, Parameters: res.Params}
	var tc struct {
		Class string `json:"tokenizer_class"`
	}
	if raw, err := os.ReadFile(filepath.Join(f.Dir, "tokenizer_config.json")); err == nil && json.Unmarshal(raw, &tc) == nil &&
		strings.HasPrefix(tc.Class, "Gemma") {
		d.Family = "SigLIP 2"
	}
	return "", d, nil
}

// checkpointWeights is the checkpoint's weights file: model.safetensors,
// else the index of its shards.
func checkpointWeights(dir string) string {
	if p := filepath.Join(dir, "model.safetensors"); fileExists(p) {
		return p
	}
	return filepath.Join(dir, "model.safetensors.index.json")
}

// BuildCheckpoint builds the ONNX towers of the model folder dir now, as
// Open would at the first start, when dir is a transformers checkpoint
// (siglipd pull does, so the daemon's first start does not wait for it).
// It returns the towers' folder, or "" when dir is in another layout.
func BuildCheckpoint(dir string, log *slog.Logger) (string, error) {
	f, err := findModelFiles(dir, "", true)
	if err != nil || f.Layout != LayoutCheckpoint {
		return "", err
	}
	built, err := fromCheckpoint(f, Options{Logger: log})
	return built.Dir, err
}

// CheckConfig reads dir/config.json as Open would and says, in one
// sentence, why it is not a model siglipd runs (a CLIP, a NaFlex SigLIP 2,
// a lone tower); nil for a SigLIP. hub.Model.Check uses it to refuse a
// repository before its weights are downloaded.
func CheckConfig(dir string) error {
	_, err := readModelConfig(filepath.Join(dir, "config.json"))
	return err
}
