package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/oip"
	"github.com/siglipd/siglipd/internal/kit"
)

// benchRow is one variant × batch size of `siglipd bench`. "raw" is a bare
// ONNX Runtime session on the same vision tower file, fed a ready tensor:
// what any program using ONNX Runtime gets. "siglipd" is siglipd's path on
// frames already at the model's size (tower, the copy into the tensor and
// the embedding's normalisation); "frame" adds the resize from FrameWidth ×
// FrameHeight, as camera frames take it.
type benchRow struct {
	Variant string `json:"variant"`
	Batch   int    `json:"batch"`
	// images/s of each path, timed in alternating rounds so that a busy
	// neighbour slows all three alike.
	RawImagesPerSec     float64 `json:"raw_images_per_s"`
	SiglipdImagesPerSec float64 `json:"siglipd_images_per_s"`
	FrameImagesPerSec   float64 `json:"frame_images_per_s"`
	// CPU time of the whole process per image (all ONNX Runtime threads).
	RawCPUPerImageMS     float64 `json:"raw_cpu_ms_per_image"`
	SiglipdCPUPerImageMS float64 `json:"siglipd_cpu_ms_per_image"`
	FrameCPUPerImageMS   float64 `json:"frame_cpu_ms_per_image"`
	// With --remote: siglipd's path with the towers on the inference
	// server (same frames as "siglipd"), and the time of one batch on
	// each path: the latency a batch adds.
	RemoteImagesPerSec float64 `json:"remote_images_per_s,omitempty"`
	SiglipdMSPerBatch  float64 `json:"siglipd_ms_per_batch,omitempty"`
	RemoteMSPerBatch   float64 `json:"remote_ms_per_batch,omitempty"`
	// With --compare: a bare ONNX Runtime session on another vision tower
	// of the same model (e.g. the exporter's graph of the weights siglipd
	// built its own from), fed the same tensor as "raw", in the same
	// rounds.
	CompareImagesPerSec  float64 `json:"compare_images_per_s,omitempty"`
	CompareCPUPerImageMS float64 `json:"compare_cpu_ms_per_image,omitempty"`
}

// benchReport is `siglipd bench --json`.
type benchReport struct {
	Model       string   `json:"model"`
	Device      string   `json:"device"`
	ORTVersion  string   `json:"onnxruntime"`
	CPU         string   `json:"cpu"`
	CPUFeatures []string `json:"cpu_features"`
	Cores       int      `json:"cores"`
	Date        string   `json:"date"`
	FrameWidth  int      `json:"frame_width"`
	FrameHeight int      `json:"frame_height"`
	ImageWidth  int      `json:"image_width"`
	ImageHeight int      `json:"image_height"`
	Runs        int      `json:"runs"`
	// AllowSpinning is whether ONNX Runtime's idle threads busy-waited
	// (--allow-spinning, the daemon's inference.allow_spinning).
	AllowSpinning bool       `json:"allow_spinning"`
	Remote        string     `json:"remote,omitempty"`  // the --remote server
	Compare       string     `json:"compare,omitempty"` // the --compare vision tower
	Rows          []benchRow `json:"rows"`
}

// benchMain is `siglipd bench`: vision-tower throughput on this machine,
// siglipd's path against a bare ONNX Runtime session, for every variant of
// the model folder; for choosing batch_size, variant and camera fps.
func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd bench", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var mf modelFlags
	mf.register(fs)
	fs.Lookup("variant").Usage = "ONNX files to measure: all (every variant in the folder), fp32, fp16, quantized, ..."
	fs.Lookup("variant").DefValue = "all"
	mf.variant = "all"
	batches := fs.IntSlice("batch", []int{1, 4, 8}, "batch sizes to measure")
	runs := fs.Int("runs", 5, "timed rounds per batch size (after one warm-up); each round runs every path once")
	frame := fs.String("frame", "1920x1080", "camera frame size WxH for the frame column (resized to the model's input)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	remote := fs.String("remote", "", "also time the remote backend: an Open Inference Protocol server's gRPC URL, grpc://host:port, serving the variant's towers")
	visionModel := fs.String("vision-model", "siglip_vision", "with --remote: the served vision tower")
	textModel := fs.String("text-model", "siglip_text", "with --remote: the served text tower")
	compare := fs.String("compare", "", "also time a bare ONNX Runtime session on another vision tower of the same model, in the same rounds as raw:\n"+
		"an .onnx file or a model folder (its onnx/vision_model.onnx), e.g. the exporter's graph of the checkpoint siglipd built its own from")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd bench: %v (see siglipd bench --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd bench --model DIR [--variant all] [--batch 1,4,8] [--runs N] [--frame WxH] [--remote grpc://HOST:PORT] [--compare FILE|DIR] [--json]\n\n%s", fs.FlagUsages())
		return exitOK
	}
	var w, h int
	if _, err := fmt.Sscanf(*frame, "%dx%d", &w, &h); err != nil || w < 1 || h < 1 {
		fmt.Fprintf(stderr, "siglipd bench: --frame %q: want WxH, e.g. 1920x1080\n", *frame)
		return exitUsage
	}
	if *runs < 1 {
		fmt.Fprintf(stderr, "siglipd bench: --runs %d: want at least 1\n", *runs)
		return exitUsage
	}
	var remoteOpts *infer.Remote
	if *remote != "" {
		u, err := url.Parse(*remote)
		if err != nil || u.Scheme != "grpc" || u.Port() == "" {
			fmt.Fprintf(stderr, "siglipd bench: --remote %q: want grpc://host:port\n", kit.RedactURL(*remote))
			return exitUsage
		}
		remoteOpts = &infer.Remote{Server: oip.Options{Target: u.Host}, VisionModel: *visionModel, TextModel: *textModel, Timeout: time.Minute}
		if mf.variant == "all" {
			mf.variant = "fp32" // the server serves one variant; compare with the same files here
		}
	}
	variants := []string{mf.variant}
	if mf.variant == "all" {
		variants = presentVariants(mf.dir)
		if len(variants) == 0 {
			variants = []string{"fp32"} // let open name what is missing
		}
	}
	if *compare != "" {
		if st, err := os.Stat(*compare); err != nil {
			fmt.Fprintf(stderr, "siglipd bench: --compare %s: %v\n", *compare, err)
			return exitUsage
		} else if st.IsDir() {
			*compare = filepath.Join(*compare, "onnx", "vision_model.onnx")
		}
	}
	rep := benchReport{Model: mf.dir, CPU: cpuModel(), CPUFeatures: cpuFeatures(), Cores: runtime.NumCPU(), Date: time.Now().Format("2006-01-02"),
		FrameWidth: w, FrameHeight: h, Runs: *runs, Remote: *remote, Compare: *compare, AllowSpinning: mf.allowSpinning}
	for _, v := range variants {
		mf.variant = v
		if err := mf.usage(); err != nil {
			fmt.Fprintf(stderr, "siglipd bench: %v\n", err)
			return exitUsage
		}
		rows, err := benchVariant(&mf, &rep, *batches, *runs, remoteOpts, *compare)
		if err != nil {
			fmt.Fprintf(stderr, "siglipd bench: %s: %v\n", v, err)
			return exitFailure
		}
		rep.Rows = append(rep.Rows, rows...)
		if !*asJSON {
			fmt.Fprintf(stderr, "siglipd bench: %s measured\n", v)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return exitOK
	}
	idle := "sleep"
	if rep.AllowSpinning {
		idle = "spin"
	}
	fmt.Fprintf(stdout, "model %s, device %s, ONNX Runtime %s (idle threads %s)\n%s (%s), %d cores, %s; %d rounds per row\n\n",
		rep.Model, rep.Device, rep.ORTVersion, idle, rep.CPU, strings.Join(rep.CPUFeatures, " "), rep.Cores, rep.Date, rep.Runs)
	fmt.Fprintf(stdout, "%-10s %5s %12s %12s %9s %14s %12s\n", "variant", "batch", "raw img/s", "siglipd img/s",
		"/raw", fmt.Sprintf("%dx%d fr/s", w, h), "CPU ms/img")
	for _, r := range rep.Rows {
		if r.RawImagesPerSec == 0 { // one graph of both towers: no tower file for a bare session
			fmt.Fprintf(stdout, "%-10s %5d %12s %12.2f %9s %14.2f %12s\n", r.Variant, r.Batch, "-",
				r.SiglipdImagesPerSec, "-", r.FrameImagesPerSec, "-")
			continue
		}
		fmt.Fprintf(stdout, "%-10s %5d %12.2f %12.2f %8.2f× %14.2f %12.1f\n", r.Variant, r.Batch, r.RawImagesPerSec,
			r.SiglipdImagesPerSec, r.SiglipdImagesPerSec/r.RawImagesPerSec, r.FrameImagesPerSec, r.RawCPUPerImageMS)
	}
	if rep.Remote != "" {
		fmt.Fprintf(stdout, "\nremote backend %s against local, same frames, alternating rounds:\n", kit.RedactURL(rep.Remote))
		fmt.Fprintf(stdout, "%-10s %5s %12s %12s %9s %15s %15s\n", "variant", "batch", "local img/s", "remote img/s",
			"/local", "local ms/batch", "remote ms/batch")
		for _, r := range rep.Rows {
			fmt.Fprintf(stdout, "%-10s %5d %12.2f %12.2f %8.2f× %15.1f %15.1f\n", r.Variant, r.Batch, r.SiglipdImagesPerSec,
				r.RemoteImagesPerSec, r.RemoteImagesPerSec/r.SiglipdImagesPerSec, r.SiglipdMSPerBatch, r.RemoteMSPerBatch)
		}
	}
	if rep.Compare != "" {
		fmt.Fprintf(stdout, "\nraw sessions on the model's vision tower and on %s, same tensor, alternating rounds:\n", rep.Compare)
		fmt.Fprintf(stdout, "%-10s %5s %12s %14s %9s %12s %14s\n", "variant", "batch", "raw img/s", "compare img/s",
			"raw/cmp", "CPU ms/img", "cmp CPU ms/img")
		for _, r := range rep.Rows {
			fmt.Fprintf(stdout, "%-10s %5d %12.2f %14.2f %8.3f× %12.1f %14.1f\n", r.Variant, r.Batch, r.RawImagesPerSec,
				r.CompareImagesPerSec, r.RawImagesPerSec/r.CompareImagesPerSec, r.RawCPUPerImageMS, r.CompareCPUPerImageMS)
		}
	}
	fmt.Fprintf(stdout, "\nraw: a bare ONNX Runtime session fed a ready tensor; siglipd: frames at %dx%d through siglipd's path;\n"+
		"%dx%d: camera frames resized first. CPU ms/img: the raw session's process CPU time per image.\n",
		rep.ImageWidth, rep.ImageHeight, w, h)
	return exitOK
}

// presentVariants lists the variants whose vision and text towers are in
// the model folder, fp32 first.
func presentVariants(dir string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range []string{"fp32", "quantized", "fp16", "int8", "uint8", "q4", "bnb4"} {
		suffix := configs.Variants[v]
		if seen[suffix] {
			continue
		}
		// A checkpoint's towers are built in float32 only.
		if f, err := infer.FindModelFiles(dir, suffix); err == nil && (f.Layout != infer.LayoutCheckpoint || suffix == "") {
			out = append(out, v)
			seen[suffix] = true
		}
	}
	return out
}

func benchVariant(mf *modelFlags, rep *benchReport, batches []int, runs int, remote *infer.Remote, compare string) ([]benchRow, error) {
	m, err := mf.open("")
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var rm *infer.Model
	if remote != nil {
		if rm, err = infer.Open(infer.Options{Dir: mf.dir, Suffix: configs.Variants[mf.variant], Resize: mf.resize, Remote: remote}); err != nil {
			return nil, err
		}
		defer rm.Close()
	}
	info := m.Info()
	rep.Device, rep.ORTVersion = info.Device, ort.GetVersion()
	rep.ImageWidth, rep.ImageHeight = info.ImageWidth, info.ImageHeight
	// The opened model's folder: for a checkpoint, the towers built from it.
	suffix := configs.Variants[mf.variant]
	if info.Dir != mf.dir {
		suffix = ""
	}
	files, err := infer.FindModelFiles(info.Dir, suffix)
	if err != nil {
		return nil, err
	}
	// One graph of both towers has no vision tower file for a bare
	// session; siglipd splits it in memory (its rows are still timed).
	var raw *rawVision
	if files.Vision != "" {
		if raw, err = newRawVision(files.Vision, mf.threads, mf.allowSpinning); err != nil {
			return nil, err
		}
		defer raw.close()
	}
	var cmp *rawVision
	if compare != "" {
		if cmp, err = newRawVision(compare, mf.threads, mf.allowSpinning); err != nil {
			return nil, fmt.Errorf("--compare: %w", err)
		}
		defer cmp.close()
	}
	small := structured(info.ImageWidth, info.ImageHeight)
	big := structured(rep.FrameWidth, rep.FrameHeight)
	var rows []benchRow
	for _, n := range batches {
		if n < 1 {
			continue
		}
		smalls, bigs := repeat(small, n), repeat(big, n)
		paths := []func() error{
			func() error {
				if raw == nil {
					return nil
				}
				return raw.run(n, info.ImageHeight, info.ImageWidth)
			},
			func() error { _, err := m.EmbedImages(smalls); return err },
			func() error { _, err := m.EmbedImages(bigs); return err },
		}
		remoteAt, compareAt := -1, -1
		if rm != nil {
			remoteAt = len(paths)
			paths = append(paths, func() error { _, err := rm.EmbedImages(smalls); return err })
		}
		if cmp != nil {
			compareAt = len(paths)
			paths = append(paths, func() error { return cmp.run(n, info.ImageHeight, info.ImageWidth) })
		}
		wall, cpu := make([]time.Duration, len(paths)), make([]time.Duration, len(paths))
		for round := -1; round < runs; round++ { // round -1 warms up
			for i, p := range paths {
				c0, t0 := processCPU(), time.Now()
				if err := p(); err != nil {
					return nil, err
				}
				if round >= 0 {
					wall[i] += time.Since(t0)
					cpu[i] += processCPU() - c0
				}
			}
		}
		images := float64(n * runs)
		perSec := func(i int) float64 { return images / wall[i].Seconds() }
		cpuMS := func(i int) float64 { return float64(cpu[i].Microseconds()) / 1000 / images }
		row := benchRow{Variant: mf.variant, Batch: n,
			SiglipdImagesPerSec: perSec(1), FrameImagesPerSec: perSec(2), SiglipdCPUPerImageMS: cpuMS(1), FrameCPUPerImageMS: cpuMS(2)}
		if raw != nil {
			row.RawImagesPerSec, row.RawCPUPerImageMS = perSec(0), cpuMS(0)
		}
		if remoteAt >= 0 {
			perBatch := func(i int) float64 { return float64(wall[i].Microseconds()) / 1000 / float64(runs) }
			row.RemoteImagesPerSec = perSec(remoteAt)
			row.SiglipdMSPerBatch, row.RemoteMSPerBatch = perBatch(1), perBatch(remoteAt)
		}
		if compareAt >= 0 {
			row.CompareImagesPerSec, row.CompareCPUPerImageMS = perSec(compareAt), cpuMS(compareAt)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func repeat(img infer.Image, n int) []infer.Image {
	out := make([]infer.Image, n)
	for i := range out {
		out[i] = img
	}
	return out
}

// structured is a frame with content that is neither constant nor random,
// so no path can take a shortcut.
func structured(w, h int) infer.Image {
	img := infer.Image{Pix: make([]byte, 3*w*h), Width: w, Height: h, Stride: 3 * w}
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7 % 251)
	}
	return img
}

// rawVision is a bare ONNX Runtime session on a vision tower: default
// session options (but siglipd's threads and spinning), inputs
// allocated per batch size and filled once, outputs allocated by ONNX
// Runtime, nothing read back.
type rawVision struct {
	session *ort.DynamicAdvancedSession
	fp16    bool
	inputs  map[int]ort.Value
}

func newRawVision(path string, threads int, allowSpinning bool) (*rawVision, error) {
	ins, _, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("raw session: %s: %v", path, err)
	}
	r := &rawVision{inputs: map[int]ort.Value{}}
	for _, in := range ins {
		if in.Name == "pixel_values" {
			r.fp16 = in.DataType == ort.TensorElementDataTypeFloat16
		}
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
	}
	if err := so.AddSessionConfigEntry(infer.SpinningEntry(allowSpinning)); err != nil {
		return nil, err
	}
	r.session, err = ort.NewDynamicAdvancedSession(path, []string{"pixel_values"}, []string{"pooler_output"}, so)
	if err != nil {
		return nil, fmt.Errorf("raw session: %s: %v", path, err)
	}
	return r, nil
}

func (r *rawVision) run(n, h, w int) error {
	in, ok := r.inputs[n]
	if !ok {
		shape := ort.NewShape(int64(n), 3, int64(h), int64(w))
		var err error
		if r.fp16 {
			data := make([]byte, 2*shape.FlattenedSize())
			for i := 0; i < len(data); i += 2 {
				binary.LittleEndian.PutUint16(data[i:], 0x3800) // 0.5
			}
			in, err = ort.NewCustomDataTensor(shape, data, ort.TensorElementDataTypeFloat16)
		} else {
			data := make([]float32, shape.FlattenedSize())
			for i := range data {
				data[i] = float32(i%251)/125 - 1
			}
			in, err = ort.NewTensor(shape, data)
		}
		if err != nil {
			return err
		}
		r.inputs[n] = in
	}
	out := []ort.Value{nil}
	if err := r.session.Run([]ort.Value{in}, out); err != nil {
		return err
	}
	return out[0].Destroy()
}

func (r *rawVision) close() {
	for _, v := range r.inputs {
		v.Destroy()
	}
	r.session.Destroy()
}

// processCPU is the CPU time (user and system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inferenceFeatures are the CPU features that change ONNX Runtime's speed
// most: the vector width, and the int8 dot-product instructions that make
// `variant: quantized` pay (VNNI and AMX on x86, dotprod and i8mm on arm64).
// Two boxes with the same model name (a VM's "Intel Xeon Processor") can
// differ in them, so a shared bench figure is only comparable with them.
var inferenceFeatures = []string{
	"avx2", "avx512f", "avx_vnni", "avx512_vnni", "amx_int8", // x86 flags
	"asimd", "asimddp", "i8mm", "sve", "bf16", // arm64 Features
}

// cpuFeatures lists which of inferenceFeatures /proc/cpuinfo reports, in
// that order.
func cpuFeatures() []string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	return parseCPUFeatures(string(b))
}

func parseCPUFeatures(cpuinfo string) []string {
	have := map[string]bool{}
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if k = strings.TrimSpace(k); k == "flags" || k == "Features" {
			for _, f := range strings.Fields(v) {
				have[f] = true
			}
			break // every core lists the same
		}
	}
	var out []string
	for _, f := range inferenceFeatures {
		if have[f] {
			out = append(out, f)
		}
	}
	return out
}

// cpuModel is /proc/cpuinfo's model name, for the report.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
