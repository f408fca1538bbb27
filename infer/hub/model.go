package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Model is one SigLIP model to fetch, in any of the layouts infer runs
// (infer.Layout): the Xenova towers, a combined graph, a transformers
// checkpoint.
type Model struct {
	ID       string // owner/name
	Revision string // branch, tag or commit; "" is main
	Variant  string // its name, for logs (fp32, quantized, ...)
	Suffix   string // of its ONNX files: "", "_quantized", "_fp16", ...
	// WithFull fetches the full model of the towers layout too, which is
	// only read for logit_scale and logit_bias (a config that sets both
	// needs it not).
	WithFull bool
	// NoTowers leaves out the vision and text towers: an inference server
	// runs them (the remote backend), and only the tokenizer, the
	// preprocessor and the logit parameters are read here.
	NoTowers bool
	// Check, when set, is given the snapshot folder once config.json is in
	// it, before any weights are fetched: a repository that is not a model
	// siglipd runs (a CLIP, say) is then refused before its gigabytes are
	// downloaded.
	Check func(dir string) error
}

// The layouts ModelDir tells apart, by infer.Layout's names.
const (
	LayoutTowers     = "towers"     // onnx/vision_model<suffix>.onnx + onnx/text_model<suffix>.onnx
	LayoutCombined   = "combined"   // onnx/model<suffix>.onnx, one graph of both towers
	LayoutCheckpoint = "checkpoint" // config.json + model.safetensors (or an index and shards)
)

// commonFiles are fetched first for every layout. tokenizer.json is
// optional here because a checkpoint may carry spiece.model instead; the
// ONNX layouts require it once the layout is known.
var commonFiles = []Want{
	{Path: "config.json"}, {Path: "preprocessor_config.json"},
	{Path: "tokenizer.json", Optional: true}, {Path: "tokenizer_config.json", Optional: true},
	{Path: "special_tokens_map.json", Optional: true},
}

// ModelDir is m's folder in the cache, fetched first when the cache lacks
// any of the files m needs (progress in the log, unless c.Progress is set).
//
// Without a listing of the repository, the layout is found by asking for
// files in turn, each a HEAD the hub answers 404 when the file is absent
// (remembered in .no_exist, as huggingface_hub does): the variant's vision
// tower, else its combined graph, else a checkpoint. ONNX external data is
// fetched as the graphs name it (their initializers' locations), a sharded
// checkpoint as its index names its shards. Every request after the first
// names the commit the first one found, so all files come from one commit.
// Offline, the cache answers each question.
func ModelDir(ctx context.Context, c Client, m Model, log *slog.Logger) (string, error) {
	if c.Progress == nil {
		c.Progress = logProgress(log)
	}
	start := time.Now()
	f := &modelFetch{c: &c, ctx: ctx, m: m, rev: m.Revision}
	layout, err := f.run()
	if err != nil {
		return "", err
	}
	log.Info("model files ready", "model", m.ID, "revision", cmp.Or(m.Revision, "main"), "variant", m.Variant,
		"layout", layout, "folder", f.dir, "took", time.Since(start).Round(time.Millisecond))
	return f.dir, nil
}

// modelFetch is one ModelDir: the snapshot so far and the commit it is of.
type modelFetch struct {
	c   *Client
	ctx context.Context
	m   Model
	rev string // m.Revision, then the commit the first request found
	dir string
}

func (f *modelFetch) fetch(files ...Want) error {
	dir, err := f.c.Fetch(f.ctx, f.m.ID, f.rev, files)
	if err != nil {
		return err
	}
	f.dir, f.rev = dir, filepath.Base(dir)
	return nil
}

// has reports whether the snapshot holds file (a slash path).
func (f *modelFetch) has(file string) bool {
	return exists(filepath.Join(f.dir, filepath.FromSlash(file)))
}

// probe fetches file if the repository has it and reports whether it does.
func (f *modelFetch) probe(file string) (bool, error) {
	if err := f.fetch(Want{Path: file, Optional: true}); err != nil {
		return false, err
	}
	return f.has(file), nil
}

func (f *modelFetch) run() (string, error) {
	if err := f.fetch(commonFiles...); err != nil {
		return "", err
	}
	if f.m.Check != nil {
		if err := f.m.Check(f.dir); err != nil {
			return "", fmt.Errorf("%s: %w", f.m.ID, err)
		}
	}
	sfx := f.m.Suffix
	vision, text, full := "onnx/vision_model"+sfx+".onnx", "onnx/text_model"+sfx+".onnx", "onnx/model"+sfx+".onnx"
	if f.m.NoTowers {
		err := f.needTokenizer()
		if err == nil {
			err = f.fullModel(full, f.m.WithFull)
		}
		return LayoutTowers, err
	}
	if ok, err := f.probe(vision); err != nil || ok {
		if err == nil {
			err = f.towers(text, full)
		}
		return LayoutTowers, err
	}
	if ok, err := f.probe(full); err != nil || ok {
		if err == nil {
			err = f.needTokenizer()
		}
		if err == nil {
			err = f.externalData(full)
		}
		return LayoutCombined, err
	}
	ok, err := f.checkpoint()
	if err != nil || ok {
		return LayoutCheckpoint, err
	}
	return "", fmt.Errorf("%s@%s: %s: no such file in the repository, nor %s (one graph of both towers), nor model.safetensors or "+
		"model.safetensors.index.json (a transformers checkpoint): no SigLIP model of the variant %s here (is the variant right? "+
		"not every repository has every variant)", f.m.ID, cmp.Or(f.m.Revision, "main"), vision, full, cmp.Or(f.m.Variant, "fp32"))
}

// towers fetches the rest of the towers layout: the text tower, the full
// model for the logit parameters (the fp32 one when the variant has none),
// and the external data they name.
func (f *modelFetch) towers(text, full string) error {
	vision := "onnx/vision_model" + f.m.Suffix + ".onnx"
	if err := f.fetch(Want{Path: text}); err != nil {
		return err
	}
	if err := f.needTokenizer(); err != nil {
		return err
	}
	for _, file := range []string{vision, text} {
		if err := f.externalData(file); err != nil {
			return err
		}
	}
	return f.fullModel(full, f.m.WithFull)
}

// fullModel fetches the full model (the fp32 one when the variant has
// none), which is read for logit_scale and logit_bias only, with the
// external data of those two initializers.
func (f *modelFetch) fullModel(full string, want bool) error {
	if !want {
		return nil
	}
	ok, err := f.probe(full)
	if err == nil && !ok && full != "onnx/model.onnx" {
		full = "onnx/model.onnx"
		ok, err = f.probe(full)
	}
	if err != nil || !ok {
		return err
	}
	return f.externalData(full, "logit_scale", "logit_bias")
}

// externalData fetches the files the graph's initializers (the named ones,
// or all) keep their data in, relative to the graph's folder.
func (f *modelFetch) externalData(graph string, initializers ...string) error {
	g, err := onnxpb.ReadGraph(filepath.Join(f.dir, filepath.FromSlash(graph)))
	if err != nil {
		return fmt.Errorf("%s@%s: %s: %w", f.m.ID, cmp.Or(f.m.Revision, "main"), graph, err)
	}
	var files []Want
	for _, loc := range g.ExternalFiles(initializers...) {
		files = append(files, Want{Path: path.Join(path.Dir(graph), filepath.ToSlash(loc))})
	}
	if len(files) == 0 {
		return nil
	}
	return f.fetch(files...)
}

func (f *modelFetch) needTokenizer() error {
	if f.has("tokenizer.json") {
		return nil
	}
	return fmt.Errorf("%s@%s: tokenizer.json: no such file in the repository, which an ONNX export needs", f.m.ID, cmp.Or(f.m.Revision, "main"))
}

// checkpoint fetches a transformers checkpoint — model.safetensors, else
// the index of its shards and the shards — with its tokenizer
// (tokenizer.json, else SentencePiece's spiece.model), and reports whether
// the repository has one.
func (f *modelFetch) checkpoint() (bool, error) {
	ok, err := f.probe("model.safetensors")
	if err != nil {
		return false, err
	}
	if !ok {
		const index = "model.safetensors.index.json"
		if ok, err = f.probe(index); err != nil || !ok {
			return false, err
		}
		shards, err := readShards(filepath.Join(f.dir, index))
		if err != nil {
			return true, fmt.Errorf("%s@%s: %s: %w", f.m.ID, cmp.Or(f.m.Revision, "main"), index, err)
		}
		var files []Want
		for _, s := range shards {
			files = append(files, Want{Path: s})
		}
		if err := f.fetch(files...); err != nil {
			return true, err
		}
	}
	if f.has("tokenizer.json") {
		return true, nil
	}
	if ok, err := f.probe("spiece.model"); err != nil || ok {
		return true, err
	}
	return true, fmt.Errorf("%s@%s: neither tokenizer.json nor spiece.model is in the repository: siglipd needs one of them to tokenize labels",
		f.m.ID, cmp.Or(f.m.Revision, "main"))
}

// readShards lists the files a model.safetensors.index.json maps weights
// to, each once, refusing any outside the repository's top folder.
func readShards(index string) ([]string, error) {
	raw, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	var shards []string
	for _, s := range idx.WeightMap {
		if !filepath.IsLocal(s) || path.Clean(s) != s {
			return nil, fmt.Errorf("weight_map names %q, not a file of the repository", s)
		}
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("weight_map names no files")
	}
	slices.Sort(shards)
	return shards, nil
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
