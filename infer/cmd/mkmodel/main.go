// Command mkmodel writes a SigLIP model folder in the Hugging Face / Xenova
// ONNX layout: a test model with deterministic weights,
//
//	go run ./infer/cmd/mkmodel --preset tiny|base|colour --out DIR [--tokenizer tokenizer.json] [--safetensors] [--fp16]
//
// (see package testmodel for what each preset is; none is a trained model),
// or the folder siglipd builds from a checkpoint in transformers' layout
// (config.json + model.safetensors), as infer/convert does for model.id:
//
//	go run ./infer/cmd/mkmodel --from CHECKPOINT --out DIR [--plain]
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/testmodel"
)

func main() {
	preset := pflag.String("preset", "tiny", "tiny (unit tests), base (SigLIP base dimensions, benchmarks) or colour (semantic fixture)")
	out := pflag.String("out", "", "output folder (created)")
	tok := pflag.String("tokenizer", "", "tokenizer.json to build the model around (default: a small generated one)")
	st := pflag.Bool("safetensors", false, "also write model.safetensors for Python transformers (tiny, base)")
	fp16 := pflag.Bool("fp16", false, "also write _fp16 towers with float16 inputs and outputs (tiny, base)")
	from := pflag.String("from", "", "instead of a preset, build the ONNX folder of this checkpoint (config.json + model.safetensors)")
	plain := pflag.Bool("plain", false, "with --from: standard ONNX operators only, no ONNX Runtime contrib operators")
	pflag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkmodel: --out DIR is required")
		os.Exit(2)
	}
	start := time.Now()
	if *from != "" {
		res, err := convert.Build(*from, *out, convert.Options{Plain: *plain})
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkmodel: %v\n", err)
			os.Exit(1)
		}
		what := "built"
		if res.Reused {
			what = "reused"
		}
		fmt.Printf("mkmodel: %s %s from %s (%d parameters) in %s\n", what, *out, *from, res.Params, time.Since(start).Round(time.Millisecond))
		return
	}
	if err := testmodel.Generate(testmodel.Options{Preset: *preset, OutDir: *out, Tokenizer: *tok, Safetensors: *st, FP16: *fp16}); err != nil {
		fmt.Fprintf(os.Stderr, "mkmodel: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mkmodel: wrote the %s model to %s in %s\n", *preset, *out, time.Since(start).Round(time.Millisecond))
}
