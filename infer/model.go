// Package infer runs SigLIP: it loads a model folder in a Hugging Face
// layout (modeldir.go: Xenova's tower files, or one combined graph it
// splits into towers, combined.go), embeds label prompts once with the text
// tower, runs the vision tower on batches of frames through ONNX Runtime —
// or, with Options.Remote, on an Open Inference Protocol server (remote.go,
// oip/) — and scores every (image, label) pair independently:
//
//	p = sigmoid(exp(logit_scale) · cos(image, label) + logit_bias)
//
// which is what transformers' zero-shot-image-classification pipeline
// computes for SigLIP. Correctness is checked against transformers.js
// (tokens, probabilities) and Pillow (pixels) in the tests.
package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/infer/oip"
	"github.com/siglipd/siglipd/infer/onnxpb"
	"github.com/siglipd/siglipd/infer/tokenizer"
)

// Image is a BGR 8-bit frame (see imageproc.Image).
type Image = imageproc.Image

// DefaultTemplate is transformers' zero-shot pipeline's hypothesis template.
const DefaultTemplate = "This is a photo of {}."

// Options configure Open.
type Options struct {
	Dir string
	// Suffix selects the ONNX files: "" (fp32), "_fp16", "_quantized", ...
	Suffix string
	// Device is cpu, auto, cuda, cuda:N, tensorrt or openvino.
	Device            string
	Threads           int
	GraphOptimization string // disabled, basic, extended, all (default)
	// AllowSpinning lets idle intra-op threads busy-wait for work
	// (ONNX Runtime's session.intra_op.allow_spinning). Off, they sleep:
	// a daemon scoring a few frames a second then leaves the CPU it does
	// not use to decoding, at the cost of a thread wake-up per parallel
	// section.
	AllowSpinning bool
	// Template wraps each prompt; "{}" is replaced. Default DefaultTemplate.
	Template string
	// Lowercase is "auto" (or ""): lower-case prompts as the tokenizer
	// files say, as transformers does; "true": as the model was trained
	// (SigLIP 2: A–Z, which transformers does not); "false": never. See
	// tokenizer.Pretrained.SetLowercase.
	Lowercase string
	// LogitScale and LogitBias override onnx/model.onnx's values.
	LogitScale, LogitBias *float64
	// Resize is "exact" (Pillow's resampling, the default) or "fast" (a box
	// filter: about 4× fewer taps, see docs/04-models.md for the measured deviation).
	Resize  string
	Library LibraryChoice
	Logger  *slog.Logger
	// StateDir is where a checkpoint's towers are built when its own
	// folder cannot be written (convert.Ensure); "" means nowhere else.
	StateDir string
	// Remote, when set, runs the towers on an inference server instead of
	// ONNX Runtime here; Device, Threads, GraphOptimization and Library
	// are then unused, and the model folder needs no tower files.
	Remote *Remote
}

// Model is a loaded SigLIP model. Its methods are safe for concurrent use.
type Model struct {
	files      ModelFiles
	opts       Options
	log        *slog.Logger
	tok        *tokenizer.Pretrained
	pre        *imageproc.Processor
	vision     *tower
	text       *tower
	logitScale float64 // exp(logit_scale), the multiplier itself
	logitBias  float64
	device     string // the execution provider in use, or "remote host:port"
	textCache  *embeddingCache
	opened     time.Time
	client     *oip.Client  // the remote backend's connection
	state      *serverState // the remote backend's server state
	desc       Description
}

// Info describes a loaded model for logs and status pages.
type Info struct {
	Dir         string
	Device      string
	ImageWidth  int
	ImageHeight int
	EmbedDim    int
	LogitScale  float64 // exp(logit_scale)
	LogitBias   float64
	Library     string
	Backend     string // "local" or "remote"
	Description Description
}

// Open loads a model folder. Errors name the file at fault.
func Open(opts Options) (*Model, error) {
	m, cfg, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	opts, files := m.opts, m.files
	if opts.Remote != nil {
		if err := m.openRemote(); err != nil {
			m.closeClient()
			return nil, err
		}
		if err := m.checkShapes(cfg); err != nil {
			m.Close()
			return nil, err
		}
		return m, nil
	}
	if _, err := LoadRuntime(opts.Library); err != nil {
		return nil, err
	}
	vision, text, err := towerSources(files)
	if err != nil {
		return nil, err
	}
	if m.vision, m.device, err = openTower(vision, visionTower, opts); err != nil {
		return nil, err
	}
	if m.text, _, err = openTower(text, textTower, opts); err != nil {
		m.vision.close()
		return nil, err
	}
	if err := m.checkShapes(cfg); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Info describes the loaded model.
func (m *Model) Info() Info {
	c := m.pre.Config()
	info := Info{Dir: m.files.Dir, Device: m.device, ImageWidth: c.Width, ImageHeight: c.Height,
		EmbedDim: m.vision.outDim, LogitScale: m.logitScale, LogitBias: m.logitBias, Library: runtimeState.path, Backend: "local",
		Description: m.desc}
	if m.client != nil {
		info.Backend, info.Library = "remote", ""
	}
	return info
}

// Close releases the ONNX Runtime sessions, or the remote backend's
// connection.
func (m *Model) Close() error {
	return errors.Join(m.vision.close(), m.text.close(), m.closeClient())
}

// Check does what Open does before it loads ONNX Runtime: it finds the
// model's files and reads its config, tokenizer, preprocessor and logit
// parameters. It is --check's view of the model folder, and says what the
// folder holds.
func Check(opts Options) (Description, error) {
	if files, err := findModelFiles(opts.Dir, opts.Suffix, opts.Remote == nil); err == nil && files.Layout == LayoutCheckpoint {
		built, d, err := checkCheckpoint(files, opts)
		if err != nil || built == "" {
			return d, err
		}
		opts.Dir, opts.Suffix = built, ""
	}
	m, _, err := prepare(opts)
	if err != nil {
		return Description{}, err
	}
	return m.desc, nil
}

// prepare applies the defaults and reads everything of the model folder
// but the towers.
func prepare(opts Options) (*Model, modelConfig, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Template == "" {
		opts.Template = DefaultTemplate
	}
	if opts.Device == "" {
		opts.Device = "cpu"
	}
	files, err := findModelFiles(opts.Dir, opts.Suffix, opts.Remote == nil)
	if err == nil && files.Layout == LayoutCheckpoint {
		files, err = fromCheckpoint(files, opts)
	}
	if err != nil {
		return nil, modelConfig{}, err
	}
	m := &Model{files: files, opts: opts, log: opts.Logger, textCache: newEmbeddingCache(), opened: time.Now()}
	cfg, err := readModelConfig(files.Config)
	if err != nil {
		return nil, cfg, err
	}
	if m.tok, err = tokenizer.LoadPretrained(files.Tokenizer, files.TokenizerConfig); err != nil {
		return nil, cfg, fmt.Errorf("tokenizer: %w", err)
	}
	if err := m.tok.SetLowercase(opts.Lowercase); err != nil {
		return nil, cfg, err
	}
	if m.pre, err = ReadPreprocessor(files.Preprocessor, opts.Resize); err != nil {
		return nil, cfg, err
	}
	if m.logitScale, m.logitBias, err = logitParams(files, opts); err != nil {
		return nil, cfg, err
	}
	if m.desc, err = m.describe(); err != nil {
		return nil, cfg, err
	}
	return m, cfg, nil
}

// modelConfig is what siglipd reads of config.json.
type modelConfig struct {
	ModelType     string   `json:"model_type"`
	Architectures []string `json:"architectures"`
	TextConfig    struct {
		MaxPositions int `json:"max_position_embeddings"`
	} `json:"text_config"`
}

// supported is the sentence every refusal of config.json ends with.
const supported = `siglipd runs SigLIP and fixed-resolution SigLIP 2 models with both towers (model_type "siglip", ` +
	`architecture SiglipModel), see docs/04-models.md`

func readModelConfig(path string) (modelConfig, error) {
	var c modelConfig
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("model config %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("model config %s: not valid JSON: %w", path, err)
	}
	if what := notSigLIP(c); what != "" {
		return c, fmt.Errorf("model config %s: %s; %s", path, what, supported)
	}
	return c, nil
}

// notSigLIP says what config.json describes when it is not a model siglipd
// can run, or "" when it is.
func notSigLIP(c modelConfig) string {
	switch mt := c.ModelType; {
	case mt == "":
		return "no model_type, so not a transformers model config"
	case mt == "siglip2":
		// SigLIP 2's fixed-resolution checkpoints say "siglip" (they are
		// SigLIP models with Gemma's tokenizer); "siglip2" is NaFlex, whose
		// vision tower takes patches with pixel_attention_mask and
		// spatial_shapes instead of an image.
		return `model_type is "siglip2", a NaFlex SigLIP 2 model (its vision tower takes variable patch sequences); ` +
			"use a fixed-resolution SigLIP 2 such as onnx-community/siglip2-base-patch16-224-ONNX"
	case mt == "siglip_vision_model" || mt == "siglip2_vision_model":
		return fmt.Sprintf("model_type is %q, a SigLIP vision tower alone, with no text tower to embed labels", mt)
	case mt == "siglip_text_model" || mt == "siglip2_text_model":
		return fmt.Sprintf("model_type is %q, a SigLIP text tower alone, with no vision tower", mt)
	case strings.Contains(mt, "clip"): // clip, chinese_clip, altclip, x_clip, metaclip_2, ...
		return fmt.Sprintf("model_type is %q, a CLIP model (softmax over labels, another tokenizer and image processing)", mt)
	case mt != "siglip":
		return fmt.Sprintf("model_type is %q, not a SigLIP model", mt)
	}
	for _, a := range c.Architectures {
		if a == "SiglipForImageClassification" {
			// model_type is still "siglip", but the checkpoint holds only the
			// vision tower and a classifier over a fixed set of labels.
			return "architecture SiglipForImageClassification: a fine-tuned image classifier with fixed labels and no text tower"
		}
	}
	return ""
}

// ReadPreprocessor reads a preprocessor_config.json into the image
// processor siglipd scores frames with (resize "exact" or "fast").
func ReadPreprocessor(path, resize string) (*imageproc.Processor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image preprocessor config %s: %w", path, err)
	}
	var c struct {
		DoResize      *bool     `json:"do_resize"`
		DoRescale     *bool     `json:"do_rescale"`
		DoNormalize   *bool     `json:"do_normalize"`
		RescaleFactor *float64  `json:"rescale_factor"`
		ImageMean     []float64 `json:"image_mean"`
		ImageStd      []float64 `json:"image_std"`
		Resample      *int      `json:"resample"`
		// SigLIP resizes straight to height×width; a shortest_edge size
		// would mean CLIP's resize-and-crop, which SigLIP does not use.
		Size map[string]int `json:"size"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("image preprocessor config %s: not valid JSON: %w", path, err)
	}
	cfg := imageproc.Config{
		Width: c.Size["width"], Height: c.Size["height"],
		Resample: 3, DoResize: true, DoRescale: true, DoNormalize: true, RescaleFactor: 1.0 / 255,
		Mean: [3]float64{0.5, 0.5, 0.5}, Std: [3]float64{0.5, 0.5, 0.5},
	}
	if cfg.Width == 0 || cfg.Height == 0 {
		return nil, fmt.Errorf("image preprocessor config %s: size must give height and width (SigLIP resizes straight to them), got %v", path, c.Size)
	}
	setBool := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	setBool(&cfg.DoResize, c.DoResize)
	setBool(&cfg.DoRescale, c.DoRescale)
	setBool(&cfg.DoNormalize, c.DoNormalize)
	if c.RescaleFactor != nil {
		cfg.RescaleFactor = *c.RescaleFactor
	}
	if c.Resample != nil {
		cfg.Resample = *c.Resample
	}
	for name, v := range map[string][]float64{"image_mean": c.ImageMean, "image_std": c.ImageStd} {
		if v == nil {
			continue
		}
		if len(v) != 3 {
			return nil, fmt.Errorf("image preprocessor config %s: %s must have 3 values, got %d", path, name, len(v))
		}
		if name == "image_mean" {
			copy(cfg.Mean[:], v)
		} else {
			copy(cfg.Std[:], v)
		}
	}
	switch resize {
	case "", "exact":
	case "fast":
		cfg.Resample = imageproc.Box
	default:
		return nil, fmt.Errorf("resize mode %q: want exact or fast", resize)
	}
	p, err := imageproc.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("image preprocessor config %s: %w", path, err)
	}
	return p, nil
}

// logitParams returns exp(logit_scale) and logit_bias: from the options,
// else from the initializers of onnx/model<suffix>.onnx (or model.onnx),
// read without loading the file — by name, else traced in the graph's
// logits head. Xenova exports keep them only there.
func logitParams(files ModelFiles, opts Options) (scale, bias float64, err error) {
	var rawScale, rawBias *float64 = opts.LogitScale, opts.LogitBias
	if rawScale == nil || rawBias == nil {
		candidates := []string{files.Full, filepath.Join(files.Dir, "onnx", "model.onnx")}
		var tried []string
		for _, path := range candidates {
			if path == "" || contains(tried, path) {
				continue
			}
			tried = append(tried, path)
			if _, err := os.Stat(path); err != nil {
				continue
			}
			vals, err := onnxpb.ReadInitializers(path, "logit_scale", "logit_bias")
			if err != nil {
				return 0, 0, fmt.Errorf("full model %s: %w", path, err)
			}
			if rawScale == nil && len(vals["logit_scale"]) == 1 {
				v := vals["logit_scale"][0]
				rawScale = &v
			}
			if rawBias == nil && len(vals["logit_bias"]) == 1 {
				v := vals["logit_bias"][0]
				rawBias = &v
			}
			if rawScale == nil || rawBias == nil {
				// Not by name: find them in the logits head (combined.go).
				scale, bias, err := tracedLogitParams(path)
				if err != nil {
					return 0, 0, fmt.Errorf("full model %s: %w", path, err)
				}
				if rawScale == nil {
					rawScale = scale
				}
				if rawBias == nil {
					rawBias = bias
				}
			}
			break
		}
		if rawScale == nil || rawBias == nil {
			where := "no onnx/model.onnx in " + files.Dir
			if len(tried) > 0 && fileExists(tried[len(tried)-1]) {
				where = tried[len(tried)-1] + " has no logit_scale/logit_bias initializers"
			}
			return 0, 0, fmt.Errorf("logit_scale and logit_bias are needed to turn similarities into probabilities: %s; set model.logit_scale and model.logit_bias in the config", where)
		}
	}
	return math.Exp(*rawScale), *rawBias, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkShapes compares the towers with the config files: the vision input
// size with preprocessor_config.json, the embedding sizes with each other.
func (m *Model) checkShapes(cfg modelConfig) error {
	c := m.pre.Config()
	if h, w := m.vision.inDims[2], m.vision.inDims[3]; (h > 0 && int(h) != c.Height) || (w > 0 && int(w) != c.Width) {
		return fmt.Errorf("vision tower %s takes %dx%d images but %s says %dx%d",
			m.vision.path, w, h, m.files.Preprocessor, c.Width, c.Height)
	}
	if m.vision.outDim > 0 && m.text.outDim > 0 && m.vision.outDim != m.text.outDim {
		return fmt.Errorf("vision tower %s gives %d-dimensional embeddings but text tower %s gives %d",
			m.vision.path, m.vision.outDim, m.text.path, m.text.outDim)
	}
	if n := cfg.TextConfig.MaxPositions; n > 0 && n < m.tok.MaxLength {
		return fmt.Errorf("tokenizer pads to %d tokens but %s allows %d positions", m.tok.MaxLength, m.files.Config, n)
	}
	return nil
}

// PromptText is the text the tower sees for a prompt: the template filled in.
func (m *Model) PromptText(prompt string) string {
	return strings.Replace(m.opts.Template, "{}", prompt, 1)
}

// TokenIDs are the padded input ids for a prompt (after the template).
func (m *Model) TokenIDs(prompt string) []int64 {
	return m.tok.EncodePadded(m.PromptText(prompt))
}

// embeddingCache keeps text embeddings by prompt text, so a config reload
// re-embeds only prompts that changed. Embeddings are never modified once
// stored. It holds at most maxCachedPrompts: search queries go through
// EmbedLabels too, and a daemon that runs for months must not keep every
// query ever typed; past the bound it starts again from empty (a reload
// then embeds its prompts once more).
const maxCachedPrompts = 4096

type embeddingCache struct {
	mu sync.Mutex
	m  map[string][]float32
}

func newEmbeddingCache() *embeddingCache { return &embeddingCache{m: map[string][]float32{}} }

func (c *embeddingCache) get(prompt string) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[prompt]
	return e, ok
}

func (c *embeddingCache) put(prompt string, e []float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedPrompts {
		clear(c.m)
	}
	c.m[prompt] = e
}
