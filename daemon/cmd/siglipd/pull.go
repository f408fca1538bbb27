package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/hub"
)

// pullMain is `siglipd pull MODEL_ID`: fetch what the daemon would fetch
// for model.id, and print the folder it is in.
func pullMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd pull", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	revision := fs.String("revision", "main", "branch, tag or commit")
	variant := fs.String("variant", "fp32", "ONNX files to fetch: fp32, fp16, quantized, ...")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd pull: %v (see siglipd pull --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, `Usage: siglipd pull MODEL_ID [--revision R] [--variant V]

Downloads a SigLIP model from the Hugging Face hub into the cache
huggingface_hub uses (HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub) and prints the folder that holds it. The
repository may hold ONNX towers (Xenova/...), one ONNX graph of both
towers (onnx-community/...) or a transformers checkpoint (google/...,
whose ONNX towers siglipd builds once, next to it in the cache). HF_ENDPOINT,
HF_TOKEN and HF_HUB_OFFLINE work as for huggingface_hub.

%s`, fs.FlagUsages())
		return exitOK
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "siglipd pull: give one model id, e.g. siglipd pull Xenova/siglip-base-patch16-224")
		return exitUsage
	}
	suffix, ok := configs.Variants[*variant]
	if !ok {
		fmt.Fprintf(stderr, "siglipd pull: --variant %q: want fp32, fp16, quantized, q8, int8, uint8, q4 or bnb4\n", *variant)
		return exitUsage
	}
	m := hub.Model{ID: fs.Arg(0), Revision: *revision, Variant: *variant, Suffix: suffix, WithFull: true, Check: infer.CheckConfig}
	if err := hub.CheckRepoID(m.ID); err != nil {
		fmt.Fprintf(stderr, "siglipd pull: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client := hub.FromEnv(os.Getenv)
	bar := newProgressBar(stderr)
	client.Progress = bar.show
	logger, _ := newLogger(stderr, "info", "text")
	dir, err := hub.ModelDir(ctx, client, m, logger)
	bar.done()
	if err != nil {
		fmt.Fprintf(stderr, "siglipd pull: %v\n", err)
		return exitFailure
	}
	// A transformers checkpoint (Google's repositories): build its ONNX
	// towers now, as the daemon would at its first start.
	if built, err := infer.BuildCheckpoint(dir, logger); err != nil {
		fmt.Fprintf(stderr, "siglipd pull: %v\n", err)
		return exitFailure
	} else if built != "" {
		fmt.Fprintf(stderr, "siglipd pull: a transformers checkpoint; its ONNX towers are in %s\n", built)
	}
	fmt.Fprintln(stdout, dir)
	return exitOK
}

// progressBar draws one line per file on a terminal, redrawn in place; on
// anything else it writes a line per file when it completes.
type progressBar struct {
	w    io.Writer
	tty  bool
	file string // the file being drawn
}

func newProgressBar(w io.Writer) *progressBar {
	b := &progressBar{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		b.tty = err == nil
	}
	return b
}

func (b *progressBar) show(p hub.Progress) {
	if !b.tty {
		if p.Done == p.Total {
			fmt.Fprintf(b.w, "siglipd pull: %s: %.1f MiB\n", p.File, float64(p.Total)/(1<<20))
		}
		return
	}
	if b.file != "" && b.file != p.File {
		fmt.Fprintln(b.w)
	}
	b.file = p.File
	const width = 30
	filled := width
	if p.Total > 0 {
		filled = int(p.Done * width / p.Total)
	}
	fmt.Fprintf(b.w, "\r%-32s [%s%s] %6.1f/%.1f MiB", p.File, strings.Repeat("#", filled), strings.Repeat(" ", width-filled),
		float64(p.Done)/(1<<20), float64(p.Total)/(1<<20))
}

func (b *progressBar) done() {
	if b.tty && b.file != "" {
		fmt.Fprintln(b.w)
	}
}
