package infer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadModelConfig: config.json of each kind of repository a user may
// name. The accepted ones are SiglipModel configs as Google, Xenova and
// onnx-community publish them; every other one is one sentence saying what
// the repository is and what siglipd runs. The fields are those
// transformers writes for each class (SiglipForImageClassification keeps
// model_type "siglip" and a text_config, but its weights have no text
// tower).
func TestReadModelConfig(t *testing.T) {
	const tail = `; siglipd runs SigLIP and fixed-resolution SigLIP 2 models with both towers (model_type "siglip", ` +
		`architecture SiglipModel), see docs/04-models.md`
	for _, tc := range []struct {
		name, config, wantErr string
	}{
		{"google SigLIP", `{"architectures": ["SiglipModel"], "model_type": "siglip", "text_config": {"model_type": "siglip_text_model"}}`, ""},
		{"SigLIP 2 fixed resolution", `{"architectures": ["SiglipModel"], "model_type": "siglip", "text_config": {"vocab_size": 256000}}`, ""},
		{"no architectures", `{"model_type": "siglip"}`, ""},
		{"CLIP", `{"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 512}`,
			`model_type is "clip", a CLIP model (softmax over labels, another tokenizer and image processing)` + tail},
		{"Chinese CLIP", `{"model_type": "chinese_clip"}`,
			`model_type is "chinese_clip", a CLIP model (softmax over labels, another tokenizer and image processing)` + tail},
		{"NaFlex SigLIP 2", `{"architectures": ["Siglip2Model"], "model_type": "siglip2"}`,
			`model_type is "siglip2", a NaFlex SigLIP 2 model (its vision tower takes variable patch sequences); ` +
				`use a fixed-resolution SigLIP 2 such as onnx-community/siglip2-base-patch16-224-ONNX` + tail},
		{"vision tower only", `{"architectures": ["SiglipVisionModel"], "model_type": "siglip_vision_model", "patch_size": 14}`,
			`model_type is "siglip_vision_model", a SigLIP vision tower alone, with no text tower to embed labels` + tail},
		{"text tower only", `{"architectures": ["SiglipTextModel"], "model_type": "siglip_text_model"}`,
			`model_type is "siglip_text_model", a SigLIP text tower alone, with no vision tower` + tail},
		{"image classifier", `{"architectures": ["SiglipForImageClassification"], "id2label": {"0": "cat"}, "model_type": "siglip", "text_config": {}}`,
			`architecture SiglipForImageClassification: a fine-tuned image classifier with fixed labels and no text tower` + tail},
		{"missing model_type", `{"architectures": ["SiglipModel"]}`, `no model_type, so not a transformers model config` + tail},
		{"other model", `{"model_type": "vit"}`, `model_type is "vit", not a SigLIP model` + tail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readModelConfig(path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr == "":
			case err == nil:
				t.Fatalf("accepted, want %q", tc.wantErr)
			case err.Error() != "model config "+path+": "+tc.wantErr:
				t.Fatalf("error\n %s\nwant\n model config %s: %s", err, path, tc.wantErr)
			}
		})
	}
}
