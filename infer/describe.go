package infer

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Description says which SigLIP a model folder holds, for --check, the
// start-up log and /api/status: users pick models by these words on the
// hub ("SigLIP 2 so400m/14 at 384"), so siglipd names them the same way.
type Description struct {
	// Family is "SigLIP" or "SigLIP 2". Both say model_type "siglip" in
	// config.json (fixed-resolution SigLIP 2 is a SigLIP with Gemma's
	// tokenizer), so the tokenizer tells them apart: Gemma's BPE is
	// SigLIP 2, SentencePiece's unigram is SigLIP.
	Family string
	// Size is the published name of the vision tower's width: base (768),
	// large (1024), so400m (1152) or giant (1536); "" for other widths
	// (test models).
	Size      string
	PatchSize int
	// ImageWidth and ImageHeight are the input size the frames are
	// resized to (preprocessor_config.json).
	ImageWidth, ImageHeight int
	// Parameters is the number of weights in the towers' ONNX files
	// (initializer values; of the one graph, when both towers are in one);
	// 0 when the towers are not here (remote backend).
	Parameters int64
}

// String is e.g. "SigLIP 2 so400m/14, 384x384 input, 1.14 B parameters".
func (d Description) String() string {
	s := d.Family
	if d.Size != "" {
		s += " " + d.Size
	}
	if d.PatchSize > 0 {
		if d.Size != "" {
			s += fmt.Sprintf("/%d", d.PatchSize)
		} else {
			s += fmt.Sprintf(", patch %d", d.PatchSize)
		}
	}
	s += fmt.Sprintf(", %dx%d input", d.ImageWidth, d.ImageHeight)
	switch p := float64(d.Parameters); {
	case d.Parameters == 0:
	case p >= 1e9:
		s += fmt.Sprintf(", %.2f B parameters", p/1e9)
	case p >= 1e6:
		s += fmt.Sprintf(", %.1f M parameters", p/1e6)
	default:
		s += fmt.Sprintf(", %d parameters", d.Parameters)
	}
	return s
}

// sizeNames are the vision widths of the published SigLIP and SigLIP 2
// models.
var sizeNames = map[int]string{768: "base", 1024: "large", 1152: "so400m", 1536: "giant"}

// describe fills in what the folder's files say; Parameters is counted
// from the tower files when they are here.
func (m *Model) describe() (Description, error) {
	c := m.pre.Config()
	d := Description{Family: "SigLIP", ImageWidth: c.Width, ImageHeight: c.Height}
	if m.tok.Kind() == "BPE" {
		d.Family = "SigLIP 2"
	}
	var cfg struct {
		VisionConfig struct {
			HiddenSize *int `json:"hidden_size"`
			PatchSize  *int `json:"patch_size"`
		} `json:"vision_config"`
	}
	raw, err := os.ReadFile(m.files.Config)
	if err != nil {
		return d, fmt.Errorf("model config %s: %w", m.files.Config, err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return d, fmt.Errorf("model config %s: not valid JSON: %w", m.files.Config, err)
	}
	// SiglipVisionConfig's defaults, which the published base config
	// relies on: hidden_size 768, patch_size 16.
	width, patch := 768, 16
	if v := cfg.VisionConfig.HiddenSize; v != nil {
		width = *v
	}
	if v := cfg.VisionConfig.PatchSize; v != nil {
		patch = *v
	}
	d.Size, d.PatchSize = sizeNames[width], patch
	towers := map[string]string{m.files.Vision: "vision tower", m.files.Text: "text tower"}
	if m.files.Layout == LayoutCombined { // both towers in one graph
		towers = map[string]string{m.files.Full: "model"}
	}
	for path, what := range towers {
		if path == "" || !fileExists(path) {
			continue
		}
		n, err := onnxpb.ParameterCount(path)
		if err != nil {
			return d, fmt.Errorf("%s: cannot load it as ONNX (%w)", what, err)
		}
		d.Parameters += n
	}
	return d, nil
}
