// Package convert builds the ONNX model folder siglipd runs from a SigLIP
// checkpoint in Google's / transformers' layout (config.json,
// preprocessor_config.json, a tokenizer and model.safetensors or
// model.safetensors.index.json with its shards; weights F32, F16 or BF16),
// with no Python export step. The output is the Xenova layout infer.Open
// reads (infer/modeldir.go):
//
//	config.json  preprocessor_config.json  tokenizer.json  [tokenizer_config.json  special_tokens_map.json]
//	onnx/vision_model.onnx  onnx/text_model.onnx  [*.onnx_data]  onnx/model.onnx  siglipd-convert.json
//
// The towers are float32 graphs that follow transformers' SiglipModel op for
// op (graph.go; shape-generic: any patch and image size, width, head count,
// a MAP pooling head, a text projection of its own size), by default with
// ONNX Runtime's fused operators (GraphOptions.Fused). Towers whose weights
// exceed Options.ExternalDataOver keep them in <name>.onnx_data next to the
// graph, so protobuf's 2 GB limit is never reached (so400m is ~3.5 GB in
// float32). onnx/model.onnx is only SigLIP's logits head: it carries
// logit_scale and logit_bias for infer, not the towers' weights again.
//
// Contract: Build reads the checkpoint and never writes to it; it checks
// config.json and every tensor's shape before writing anything, and an error
// names the file, key or tensor at fault. The output folder appears whole
// or not at all: it is built in a sibling temporary folder and renamed into
// place, so a reader (or a crash) never sees half a model. A stamp file
// (siglipd-convert.json) records the builder version, the options and the
// size and modification time of each source file; a later Build with the
// same stamp reuses the folder, a changed checkpoint or builder rebuilds
// it. Weights are read one tensor at a time while the files are written, so
// memory holds one weight, not the model. Build blocks for as long as the
// conversion takes (docs/measurements.md); two builds of the same folder at
// once (two processes) both succeed and one copy is kept. Ensure chooses
// the output folder (OutputDir) and builds if needed.
package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/siglipd/siglipd/infer/onnxpb"
	"github.com/siglipd/siglipd/internal/kit"
)

// BuilderVersion changes whenever Build would write different files for
// the same checkpoint; folders stamped with another version are rebuilt.
const BuilderVersion = 1

// DefaultExternalDataOver is the tower size above which weights go into
// external data: well under protobuf's 2 GB limit on one message.
const DefaultExternalDataOver = 1536 << 20

// StampFile is the stamp Build writes last into the output folder.
const StampFile = "siglipd-convert.json"

// Options configure Build.
type Options struct {
	// Plain writes standard ONNX operators only (opset 17), for inference
	// servers other than ONNX Runtime (the remote backend serves the
	// towers too); the default uses ONNX Runtime's contrib operators,
	// which run faster there (GraphOptions.Fused).
	Plain bool
	// ExternalDataOver: a tower whose weights exceed this many bytes keeps
	// them in <tower>.onnx_data. 0 means DefaultExternalDataOver; a
	// negative value never uses external data.
	ExternalDataOver int64
	// SentencePiece turns a spiece.model into tokenizer.json bytes, for
	// checkpoints that ship only a SentencePiece model (Google's SigLIP 1
	// repositories). Without it such a checkpoint is an error naming the
	// file.
	SentencePiece func(spiecePath string) ([]byte, error)
}

func (o Options) externalOver() int64 {
	if o.ExternalDataOver == 0 {
		return DefaultExternalDataOver
	}
	return o.ExternalDataOver
}

func (o Options) graph() string {
	if o.Plain {
		return "plain"
	}
	return "fused"
}

// Result describes a built (or reused) model folder.
type Result struct {
	Dir    string
	Reused bool  // the stamp matched: nothing was written
	Params int64 // the checkpoint's parameter count
	Config Config
}

// IsCheckpoint reports whether dir holds a checkpoint in transformers'
// layout (config.json and model.safetensors or its index) rather than, or
// besides, ONNX towers. It reads no file but the index.
func IsCheckpoint(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return false
	}
	files, _, err := safetensorsFiles(dir)
	return err == nil && len(files) > 0
}

// source is one input file of a build, as the stamp records it.
type source struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
}

// stamp is siglipd-convert.json.
type stamp struct {
	Builder      int      `json:"builder"`
	Graph        string   `json:"graph"`
	ExternalOver int64    `json:"external_data_over"`
	Sources      []source `json:"sources"`
	Params       int64    `json:"params"`
	Written      string   `json:"written"`
}

func (s stamp) matches(o stamp) bool {
	return s.Builder == o.Builder && s.Graph == o.Graph && s.ExternalOver == o.ExternalOver && slices.Equal(s.Sources, o.Sources)
}

// checkpoint is what Build reads from the source folder.
type checkpoint struct {
	dir        string
	config     Config
	weights    *Safetensors
	tokenizer  string // tokenizer.json, or "" with spiece set
	spiece     string
	copies     []string // files copied as they are
	stampFiles []string // every file the output depends on
}

func readCheckpoint(dir string, opts Options) (*checkpoint, error) {
	ck := &checkpoint{dir: dir}
	configPath := filepath.Join(dir, "config.json")
	var err error
	if ck.config, err = ReadConfig(configPath); err != nil {
		return nil, err
	}
	pre := filepath.Join(dir, "preprocessor_config.json")
	if _, err := os.Stat(pre); err != nil {
		return nil, fmt.Errorf("image preprocessor config %s: missing from the checkpoint; siglipd needs it for the input size and normalisation (Google's repositories have it)", pre)
	}
	ck.copies = []string{configPath, pre}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			ck.copies = append(ck.copies, p)
		}
	}
	switch tj, sp := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "spiece.model"); {
	case fileExists(tj):
		ck.tokenizer = tj
		ck.copies = append(ck.copies, tj)
	case fileExists(sp) && opts.SentencePiece == nil:
		return nil, fmt.Errorf("tokenizer: checkpoint %s has spiece.model but no tokenizer.json, and this build of siglipd cannot convert a SentencePiece model; use a repository that ships tokenizer.json", dir)
	case fileExists(sp):
		ck.spiece = sp
	default:
		return nil, fmt.Errorf("tokenizer: checkpoint %s has neither tokenizer.json nor spiece.model", dir)
	}
	files, index, err := safetensorsFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("weights: checkpoint %s has neither model.safetensors nor model.safetensors.index.json (siglipd reads safetensors, not pytorch_model.bin)", dir)
	}
	if ck.weights, err = OpenSafetensors(files...); err != nil {
		return nil, err
	}
	ck.stampFiles = append(slices.Clone(ck.copies), files...)
	if index != "" {
		ck.stampFiles = append(ck.stampFiles, index)
	}
	if ck.spiece != "" {
		ck.stampFiles = append(ck.stampFiles, ck.spiece)
	}
	return ck, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func makeStamp(ck *checkpoint, opts Options) (stamp, error) {
	s := stamp{Builder: BuilderVersion, Graph: opts.graph(), ExternalOver: opts.externalOver(), Params: ck.weights.Params()}
	for _, p := range ck.stampFiles {
		st, err := os.Stat(p) // through the hub cache's symlinks, to the blob
		if err != nil {
			return s, err
		}
		s.Sources = append(s.Sources, source{Name: filepath.Base(p), Size: st.Size(), ModTime: st.ModTime().UnixNano()})
	}
	slices.SortFunc(s.Sources, func(a, b source) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

func readStamp(dir string) (stamp, bool) {
	var s stamp
	raw, err := os.ReadFile(filepath.Join(dir, StampFile))
	if err != nil || json.Unmarshal(raw, &s) != nil {
		return s, false
	}
	return s, true
}

// Build writes the ONNX model folder for the checkpoint in src to out, or
// reuses out when its stamp matches (see the package comment).
func Build(src, out string, opts Options) (Result, error) {
	ck, err := readCheckpoint(src, opts)
	if err != nil {
		return Result{}, err
	}
	want, err := makeStamp(ck, opts)
	if err != nil {
		return Result{}, err
	}
	res := Result{Dir: out, Params: want.Params, Config: ck.config}
	if have, ok := readStamp(out); ok && have.matches(want) {
		res.Reused = true
		return res, nil
	}
	// Check every tensor against the config before writing anything.
	vision, text, err := Towers(ck.config, ck.weights, GraphOptions{Fused: !opts.Plain}, Producer)
	if err != nil {
		return Result{}, err
	}
	logits, err := LogitsModel(ck.config, ck.weights, Producer)
	if err != nil {
		return Result{}, err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Result{}, fmt.Errorf("model output folder %s: %w", parent, err)
	}
	removeStale(out)
	tmp, err := os.MkdirTemp(parent, filepath.Base(out)+".tmp-")
	if err != nil {
		return Result{}, fmt.Errorf("model output folder %s: %w", parent, err)
	}
	// Gone after a successful rename; MkdirTemp makes it private.
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Result{}, err
	}
	if err := writeFolder(tmp, ck, opts, vision, text, logits); err != nil {
		return Result{}, err
	}
	want.Written = time.Now().UTC().Format(time.RFC3339)
	raw, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, StampFile), append(raw, '\n'), 0o644); err != nil {
		return Result{}, err
	}
	if err := publish(tmp, out, want); err != nil {
		return Result{}, err
	}
	return res, nil
}

func writeFolder(dir string, ck *checkpoint, opts Options, vision, text, logits *onnxpb.Model) error {
	for _, p := range ck.copies {
		if err := kit.CopyFile(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			return err
		}
	}
	if ck.spiece != "" {
		tj, err := opts.SentencePiece(ck.spiece)
		if err != nil {
			return fmt.Errorf("tokenizer: converting %s to tokenizer.json: %w", ck.spiece, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
			return err
		}
	}
	onnxDir := filepath.Join(dir, "onnx")
	if err := os.MkdirAll(onnxDir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		m    *onnxpb.Model
	}{{"vision_model.onnx", vision}, {"text_model.onnx", text}, {"model.onnx", logits}} {
		if _, err := f.m.WriteFile(filepath.Join(onnxDir, f.name), opts.externalOver()); err != nil {
			return fmt.Errorf("writing onnx/%s: %w", f.name, err)
		}
	}
	return nil
}

// publish renames the finished folder tmp to out. When out exists it is
// either a concurrent build of the same checkpoint (kept: it is the same
// model) or a stale one (moved aside and removed); a concurrent build may
// take the place between the two renames, hence the retries.
func publish(tmp, out string, want stamp) error {
	var err error
	for range 3 {
		if err = os.Rename(tmp, out); err == nil {
			return nil
		}
		if _, statErr := os.Stat(out); statErr != nil {
			return fmt.Errorf("model output folder %s: %w", out, err)
		}
		if have, ok := readStamp(out); ok && have.matches(want) {
			return nil
		}
		old := fmt.Sprintf("%s.old-%d", out, time.Now().UnixNano())
		if os.Rename(out, old) == nil {
			defer os.RemoveAll(old)
		}
	}
	return fmt.Errorf("model output folder %s: %w", out, err)
}

// staleAfter is how old a leftover temporary or replaced folder must be
// before a build removes it: far longer than any build runs, so a
// concurrent build's folder is never taken.
const staleAfter = 6 * time.Hour

// removeStale removes what crashed builds left next to out.
func removeStale(out string) {
	for _, pattern := range []string{out + ".tmp-*", out + ".old-*"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && time.Since(st.ModTime()) > staleAfter {
				os.RemoveAll(m)
			}
		}
	}
}

// OutputDir is where Ensure puts the ONNX folder for the checkpoint src:
//
//   - a Hugging Face cache snapshot <cache>/models--org--name/snapshots/<commit>
//     gets <cache>/models--org--name/siglipd/<commit>, next to the snapshot,
//     so it is shared by every config naming the model and deleted with it;
//   - any other folder gets <src>/.siglipd, next to the weights.
//
// Ensure falls back to the state folder when <src>/.siglipd cannot be
// written.
func OutputDir(src string) string {
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = filepath.Clean(src)
	}
	snapshots := filepath.Dir(abs)
	repo := filepath.Dir(snapshots)
	if filepath.Base(snapshots) == "snapshots" && strings.HasPrefix(filepath.Base(repo), "models--") {
		return filepath.Join(repo, "siglipd", filepath.Base(abs))
	}
	return filepath.Join(abs, ".siglipd")
}

// Check does what Build does before it writes: it reads the checkpoint's
// config, tokenizer and weight headers and checks every tensor against the
// config. Result.Dir is OutputDir(src); Result.Reused says the folder there
// is already built from this checkpoint. It writes nothing (--check).
func Check(src string, opts Options) (Result, error) {
	ck, err := readCheckpoint(src, opts)
	if err != nil {
		return Result{}, err
	}
	want, err := makeStamp(ck, opts)
	if err != nil {
		return Result{}, err
	}
	if _, _, err := Towers(ck.config, ck.weights, GraphOptions{Fused: !opts.Plain}, Producer); err != nil {
		return Result{}, err
	}
	if _, err := LogitsModel(ck.config, ck.weights, Producer); err != nil {
		return Result{}, err
	}
	out := OutputDir(src)
	have, ok := readStamp(out)
	return Result{Dir: out, Params: want.Params, Config: ck.config, Reused: ok && have.matches(want)}, nil
}

// fallbackDir is the output folder under stateDir for a local checkpoint
// whose own folder is read-only: named after the folder and a hash of its
// path, so two checkpoints never share one.
func fallbackDir(src, stateDir string) string {
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = filepath.Clean(src)
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(stateDir, "converted", filepath.Base(abs)+"-"+hex.EncodeToString(sum[:6]))
}

// Ensure returns the ONNX folder for the checkpoint src, building it the
// first time (Build): in OutputDir(src), or for a local checkpoint whose
// folder cannot be written, in stateDir/converted/<name>-<hash> (stateDir
// "" means no fallback).
func Ensure(src, stateDir string, opts Options) (Result, error) {
	out := OutputDir(src)
	res, err := Build(src, out, opts)
	readOnly := errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
	if err == nil || stateDir == "" || filepath.Base(out) != ".siglipd" || !readOnly {
		return res, err
	}
	return Build(src, fallbackDir(src, stateDir), opts)
}
