package infer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ModelFiles are the files of a SigLIP model folder in the Hugging Face /
// Xenova ONNX layout (e.g. Xenova/siglip-base-patch16-224):
//
//	config.json  preprocessor_config.json  tokenizer.json  tokenizer_config.json
//	onnx/vision_model<suffix>.onnx  onnx/text_model<suffix>.onnx  onnx/model<suffix>.onnx
//
// The suffix is "" for fp32, "_fp16", "_quantized", ... (configs.Variants).
type ModelFiles struct {
	Dir             string
	Config          string
	Preprocessor    string
	Tokenizer       string
	TokenizerConfig string // optional
	Vision          string
	Text            string
	Full            string // optional: only read for logit_scale / logit_bias
}

// FindModelFiles resolves the files of the model folder dir for an ONNX file
// suffix and checks that the required ones exist. The error names the first
// missing file by its full path.
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
		return ModelFiles{}, fmt.Errorf("model folder %s: is a file, not a folder in the Hugging Face ONNX layout", dir)
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
	required := []struct{ path, what string }{
		{f.Config, "model config"},
		{f.Preprocessor, "image preprocessor config"},
		{f.Tokenizer, "tokenizer"},
	}
	if towers {
		required = append(required, []struct{ path, what string }{{f.Vision, "vision tower"}, {f.Text, "text tower"}}...)
	}
	for _, req := range required {
		if _, err := os.Stat(req.path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return ModelFiles{}, fmt.Errorf("%s %s: missing from the model folder", req.what, req.path)
			}
			return ModelFiles{}, fmt.Errorf("%s %s: %w", req.what, req.path, errors.Unwrap(err))
		}
	}
	if _, err := os.Stat(f.TokenizerConfig); err != nil {
		f.TokenizerConfig = ""
	}
	if _, err := os.Stat(f.Full); err != nil {
		f.Full = ""
	}
	return f, nil
}
