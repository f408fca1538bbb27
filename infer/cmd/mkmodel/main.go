// Command mkmodel writes a SigLIP test model folder in the Hugging Face /
// Xenova ONNX layout, with deterministic weights:
//
//	go run ./infer/cmd/mkmodel --preset tiny|base|colour --out DIR [--tokenizer tokenizer.json] [--safetensors] [--fp16]
//
// See package testmodel for what each preset is (none is a trained model).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/infer/testmodel"
)

func main() {
	preset := pflag.String("preset", "tiny", "tiny (unit tests), base (SigLIP base dimensions, benchmarks) or colour (semantic fixture)")
	out := pflag.String("out", "", "output folder (created)")
	tok := pflag.String("tokenizer", "", "tokenizer.json to build the model around (default: a small generated one)")
	st := pflag.Bool("safetensors", false, "also write model.safetensors for Python transformers (tiny, base)")
	fp16 := pflag.Bool("fp16", false, "also write _fp16 towers with float16 inputs and outputs (tiny, base)")
	pflag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkmodel: --out DIR is required")
		os.Exit(2)
	}
	start := time.Now()
	if err := testmodel.Generate(testmodel.Options{Preset: *preset, OutDir: *out, Tokenizer: *tok, Safetensors: *st, FP16: *fp16}); err != nil {
		fmt.Fprintf(os.Stderr, "mkmodel: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mkmodel: wrote the %s model to %s in %s\n", *preset, *out, time.Since(start).Round(time.Millisecond))
}
