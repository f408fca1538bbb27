package hub

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Model is one SigLIP model to fetch in the Hugging Face / Xenova ONNX
// layout (the folder infer.FindModelFiles reads).
type Model struct {
	ID       string // owner/name
	Revision string // branch, tag or commit; "" is main
	Variant  string // its name, for logs (fp32, quantized, ...)
	Suffix   string // of its ONNX files: "", "_quantized", "_fp16", ...
	// WithFull fetches the full model too, which is only read for
	// logit_scale and logit_bias (a config that sets both needs it not).
	WithFull bool
	// NoTowers leaves out the vision and text towers: an inference server
	// runs them (the remote backend), and only the tokenizer, the
	// preprocessor and the logit parameters are read here.
	NoTowers bool
}

// ModelFiles are the files of m to fetch: what infer.FindModelFiles
// requires, the optional tokenizer config, and the full model when
// m.WithFull (optional: an export without it for the variant falls back to
// onnx/model.onnx, see ModelDir).
func ModelFiles(m Model) []Want {
	w := []Want{
		{Path: "config.json"}, {Path: "preprocessor_config.json"}, {Path: "tokenizer.json"},
		{Path: "tokenizer_config.json", Optional: true},
	}
	if !m.NoTowers {
		w = append(w, Want{Path: "onnx/vision_model" + m.Suffix + ".onnx"}, Want{Path: "onnx/text_model" + m.Suffix + ".onnx"})
	}
	if m.WithFull {
		w = append(w, Want{Path: "onnx/model" + m.Suffix + ".onnx", Optional: true})
	}
	return w
}

// ModelDir is m's folder in the cache, fetched first when the cache lacks
// any of the files m needs (progress in the log, unless c.Progress is set).
func ModelDir(ctx context.Context, c Client, m Model, log *slog.Logger) (string, error) {
	if c.Progress == nil {
		c.Progress = logProgress(log)
	}
	start := time.Now()
	dir, err := c.Fetch(ctx, m.ID, m.Revision, ModelFiles(m))
	if err == nil && m.WithFull && m.Suffix != "" && !exists(filepath.Join(dir, "onnx", "model"+m.Suffix+".onnx")) {
		// No full model of this variant: logit_scale and logit_bias come
		// from the fp32 one, as infer reads them.
		fp32 := m
		fp32.WithFull = false
		dir, err = c.Fetch(ctx, m.ID, m.Revision, append(ModelFiles(fp32), Want{Path: "onnx/model.onnx"}))
	}
	if err != nil {
		return "", err
	}
	log.Info("model files ready", "model", m.ID, "revision", cmp.Or(m.Revision, "main"), "variant", m.Variant,
		"folder", dir, "took", time.Since(start).Round(time.Millisecond))
	return dir, nil
}

// logProgress logs a download's progress every 10 %, and its end.
func logProgress(log *slog.Logger) func(Progress) {
	last := map[string]int64{} // file → last tenth logged
	return func(p Progress) {
		tenth := int64(10)
		if p.Total > 0 {
			tenth = p.Done * 10 / p.Total
		}
		if prev, ok := last[p.File]; ok && tenth <= prev {
			return
		}
		last[p.File] = tenth
		log.Info("downloading model file", "model", p.Repo, "file", p.File, "percent", tenth*10,
			"mib", fmt.Sprintf("%.1f/%.1f", float64(p.Done)/(1<<20), float64(p.Total)/(1<<20)))
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
