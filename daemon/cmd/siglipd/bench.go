package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/infer"
)

// benchMain is `siglipd bench`: vision-tower throughput on this machine,
// for choosing batch_size and camera fps.
func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd bench", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var mf modelFlags
	mf.register(fs)
	batches := fs.IntSlice("batch", []int{1, 4, 8}, "batch sizes to measure")
	runs := fs.Int("runs", 10, "timed runs per batch size (after one warm-up)")
	frame := fs.String("frame", "1920x1080", "synthetic frame size WxH (resized to the model's input, as camera frames are)")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd bench: %v (see siglipd bench --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd bench --model DIR [--batch 1,4,8] [--runs N] [--frame WxH]\n\n%s", fs.FlagUsages())
		return exitOK
	}
	var w, h int
	if _, err := fmt.Sscanf(*frame, "%dx%d", &w, &h); err != nil || w < 1 || h < 1 {
		fmt.Fprintf(stderr, "siglipd bench: --frame %q: want WxH, e.g. 1920x1080\n", *frame)
		return exitUsage
	}
	if err := mf.usage(); err != nil {
		fmt.Fprintf(stderr, "siglipd bench: %v\n", err)
		return exitUsage
	}
	m, err := mf.open("")
	if err != nil {
		fmt.Fprintf(stderr, "siglipd bench: %v\n", err)
		return exitFailure
	}
	defer m.Close()
	info := m.Info()
	img := infer.Image{Pix: make([]byte, 3*w*h), Width: w, Height: h, Stride: 3 * w}
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7 % 251) // structured, not constant: no shortcut anywhere
	}
	fmt.Fprintf(stdout, "model %s, device %s, %dx%d frames → %dx%d\n", info.Dir, info.Device, w, h, info.ImageWidth, info.ImageHeight)
	fmt.Fprintf(stdout, "%6s %12s %12s\n", "batch", "ms/batch", "images/s")
	for _, n := range *batches {
		if n < 1 {
			continue
		}
		imgs := make([]infer.Image, n)
		for i := range imgs {
			imgs[i] = img
		}
		if _, err := m.EmbedImages(imgs); err != nil {
			fmt.Fprintf(stderr, "siglipd bench: %v\n", err)
			return exitFailure
		}
		start := time.Now()
		for r := 0; r < *runs; r++ {
			if _, err := m.EmbedImages(imgs); err != nil {
				fmt.Fprintf(stderr, "siglipd bench: %v\n", err)
				return exitFailure
			}
		}
		per := time.Since(start) / time.Duration(*runs)
		fmt.Fprintf(stdout, "%6d %12.1f %12.2f\n", n, float64(per.Microseconds())/1000, float64(n)/per.Seconds())
	}
	return exitOK
}
