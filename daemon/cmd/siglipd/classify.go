package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // header formats for the pixel cap (readImage)
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gocv.io/x/gocv"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
)

// modelFlags are the flags classify and bench share to open a model.
type modelFlags struct {
	dir, variant, device, ortLib, resize string
	threads                              int
	allowSpinning                        bool
}

func (f *modelFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.dir, "model", "", "SigLIP model folder (Hugging Face / Xenova ONNX layout)")
	fs.StringVar(&f.variant, "variant", "fp32", "ONNX files to use: fp32, fp16, quantized, ...")
	fs.StringVar(&f.device, "device", "cpu", "cpu, auto, cuda, cuda:N, tensorrt or openvino")
	fs.StringVar(&f.ortLib, "ort-lib", "", "path of libonnxruntime.so")
	fs.StringVar(&f.resize, "resize", "exact", "exact (Pillow, as the Python pipeline) or fast")
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: all cores)")
	fs.BoolVar(&f.allowSpinning, "allow-spinning", false, "let ONNX Runtime's idle threads busy-wait for work (inference.allow_spinning)")
}

// usage reports a flag that can never work: a usage error (exit 2).
func (f *modelFlags) usage() error {
	if f.dir == "" {
		return errors.New("--model DIR is required")
	}
	if _, ok := configs.Variants[f.variant]; !ok {
		return fmt.Errorf("--variant %q: want fp32, fp16, quantized, q8, int8, uint8, q4 or bnb4", f.variant)
	}
	return nil
}

func (f *modelFlags) open(template string) (*infer.Model, error) {
	return infer.Open(infer.Options{
		Dir: f.dir, Suffix: configs.Variants[f.variant], Device: f.device, Threads: f.threads, AllowSpinning: f.allowSpinning, Template: template, Resize: f.resize,
		Library: infer.LibraryChoice{Flag: f.ortLib, Env: os.Getenv("SIGLIPD_ORT_LIB")},
	})
}

// DefaultMaxPixels is classify's default --max-pixels: 64 megapixels (an
// 8K frame is 33), about 200 MB once decoded.
const DefaultMaxPixels = 64_000_000

// readImage decodes the image at path, BGR, after checkImageHeader.
func readImage(path string, maxPixels int) (gocv.Mat, error) {
	f, err := os.Open(path)
	if err != nil {
		return gocv.Mat{}, errors.Unwrap(err) // "no such file or directory", "permission denied"
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = errors.New("is a directory")
	}
	if err == nil {
		err = checkImageHeader(f, maxPixels)
	}
	f.Close()
	if err != nil {
		return gocv.Mat{}, err
	}
	mat := gocv.IMRead(path, gocv.IMReadColor)
	if mat.Empty() {
		mat.Close()
		return gocv.Mat{}, errors.New("not an image OpenCV can decode")
	}
	return mat, nil
}

// checkImageHeader reads an image's header and refuses one of more than
// maxPixels (0: no cap) before anything decodes it: a 389 KB PNG can
// declare 20000×20000 pixels, 1.2 GB decoded. Headers are read for PNG,
// JPEG, GIF, BMP, TIFF and WebP; any other format passes, for OpenCV to
// judge under its own cap (1 gigapixel).
func checkImageHeader(r io.Reader, maxPixels int) error {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return nil // not a format Go reads: OpenCV's to judge
	}
	if px := int64(cfg.Width) * int64(cfg.Height); maxPixels > 0 && px > int64(maxPixels) {
		return fmt.Errorf("%s of %dx%d is %.1f megapixels, more than --max-pixels allows (%.1f); raise it to classify this image",
			strings.ToUpper(format), cfg.Width, cfg.Height, float64(px)/1e6, float64(maxPixels)/1e6)
	}
	return nil
}

// classifyResult is one output line: the seed's pipeline output per image.
type classifyResult struct {
	Image   string        `json:"image"`
	Results []labelResult `json:"results"`
}

type labelResult struct {
	Label string  `json:"label"`
	Score float32 `json:"score"`
}

// classifyMain is `siglipd classify`, the command-line twin of transformers'
// pipeline("zero-shot-image-classification"): one JSON line per image with
// every label's independent probability, highest first, unrounded.
func classifyMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd classify", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var mf modelFlags
	mf.register(fs)
	labels := fs.StringArray("label", nil, "a candidate label (repeat for more)")
	template := fs.String("template", infer.DefaultTemplate, "hypothesis template; {} is replaced by the label")
	batch := fs.Int("batch", 8, "images per vision-tower run")
	maxPixels := fs.Int("max-pixels", DefaultMaxPixels, "refuse images with more pixels than this, before decoding (0: no cap)")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd classify: %v (see siglipd classify --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd classify --model DIR --label L [--label L]... [--template T] [--batch N] IMAGE...\n\n%s", fs.FlagUsages())
		return exitOK
	}
	switch {
	case len(*labels) == 0:
		fmt.Fprintln(stderr, "siglipd classify: at least one --label is required")
		return exitUsage
	case fs.NArg() == 0:
		fmt.Fprintln(stderr, "siglipd classify: no images given")
		return exitUsage
	case *batch < 1:
		fmt.Fprintln(stderr, "siglipd classify: --batch must be at least 1")
		return exitUsage
	case strings.Count(*template, "{}") != 1:
		fmt.Fprintf(stderr, "siglipd classify: --template must contain {} once, got %q\n", *template)
		return exitUsage
	case *maxPixels < 0:
		fmt.Fprintln(stderr, "siglipd classify: --max-pixels must be 0 (no cap) or more")
		return exitUsage
	}
	if err := mf.usage(); err != nil {
		fmt.Fprintf(stderr, "siglipd classify: %v\n", err)
		return exitUsage
	}
	m, err := mf.open(*template)
	if err != nil {
		fmt.Fprintf(stderr, "siglipd classify: %v\n", err)
		return exitFailure
	}
	defer m.Close()
	var ls []infer.Label
	for _, l := range *labels {
		ls = append(ls, infer.Label{Name: l, Prompts: []string{l}})
	}
	set, err := m.EmbedLabels(ls)
	if err != nil {
		fmt.Fprintf(stderr, "siglipd classify: %v\n", err)
		return exitFailure
	}
	enc := json.NewEncoder(stdout)
	code := exitOK
	paths := fs.Args()
	for start := 0; start < len(paths); start += *batch {
		ok, err := classifyBatch(m, set, paths[start:min(start+*batch, len(paths))], *maxPixels, enc, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "siglipd classify: %v\n", err)
			return exitFailure
		}
		if !ok {
			code = exitFailure
		}
	}
	return code
}

// classifyBatch classifies the images at paths in one vision-tower run and
// writes a line per image. An image that cannot be read is reported on
// stderr and makes ok false; err is a failure of the model or of stdout.
func classifyBatch(m *infer.Model, set *infer.LabelSet, paths []string, maxPixels int, enc *json.Encoder, stderr io.Writer) (ok bool, err error) {
	ok = true
	var imgs []infer.Image
	var names []string
	var mats []gocv.Mat
	defer func() {
		for _, mat := range mats {
			mat.Close()
		}
	}()
	for _, p := range paths {
		mat, err := readImage(p, maxPixels)
		if err == nil {
			var img infer.Image
			if img, err = matImage(mat); err == nil {
				mats, imgs, names = append(mats, mat), append(imgs, img), append(names, p)
				continue
			}
			mat.Close()
		}
		fmt.Fprintf(stderr, "siglipd classify: %s: %v\n", p, err)
		ok = false
	}
	probs, err := m.Classify(imgs, repeatSet(set, len(imgs)))
	if err != nil {
		return false, err
	}
	for i, name := range names {
		res := classifyResult{Image: name}
		for j, l := range set.Names {
			res.Results = append(res.Results, labelResult{Label: l, Score: probs[i][j]})
		}
		sort.SliceStable(res.Results, func(a, b int) bool { return res.Results[a].Score > res.Results[b].Score })
		if err := enc.Encode(res); err != nil {
			return false, err
		}
	}
	return ok, nil
}

func repeatSet(s *infer.LabelSet, n int) []*infer.LabelSet {
	out := make([]*infer.LabelSet, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// matImage views an 8-bit BGR Mat as an infer.Image without copying; the
// Image is valid while the Mat is open.
func matImage(m gocv.Mat) (infer.Image, error) {
	if m.Type() != gocv.MatTypeCV8UC3 {
		return infer.Image{}, fmt.Errorf("not an 8-bit 3-channel image (type %v)", m.Type())
	}
	pix, err := m.DataPtrUint8()
	if err != nil {
		return infer.Image{}, err
	}
	return infer.Image{Pix: pix, Width: m.Cols(), Height: m.Rows(), Stride: m.Step()}, nil
}
