// Package imageproc turns camera frames into SigLIP's pixel_values the way
// transformers' SiglipImageProcessor does: resize straight to (height,
// width) with Pillow's resampling, rescale by 1/255, normalize with the
// model's mean and std, channels first (NCHW), RGB.
//
// Pillow antialiases when it shrinks (its filter widens with the scale
// factor); OpenCV's INTER_CUBIC does not, and on a 1920×1080 frame shrunk
// to 224×224 the two differ visibly. Resize here is a port of Pillow 9.4's
// ImagingResample for 8-bit images — same double-precision coefficients,
// same 22-bit fixed-point accumulation, same rounding and clipping — so its
// output is bit-identical to PIL's (checked against python3-pil in the
// tests).
package imageproc

import (
	"fmt"
	"image"
	"math"
	"sync"
)

// Image is an 8-bit, 3-channel image in BGR order — an OpenCV frame
// (gocv CV_8UC3). Stride is the byte distance between rows, so a
// sub-rectangle of a larger frame is an Image without copying.
type Image struct {
	Pix           []byte
	Width, Height int
	Stride        int
}

// Sub returns the part of im inside r (which must lie within the image).
func (im Image) Sub(r image.Rectangle) Image {
	return Image{Pix: im.Pix[r.Min.Y*im.Stride+3*r.Min.X:], Width: r.Dx(), Height: r.Dy(), Stride: im.Stride}
}

// Resample filters, numbered as PIL's Image.Resampling (the "resample" of
// preprocessor_config.json). Nearest (0) is not supported.
const (
	Lanczos  = 1
	Bilinear = 2
	Bicubic  = 3
	Box      = 4
	Hamming  = 5
)

// Config is a preprocessor_config.json's image settings.
type Config struct {
	Width, Height int
	Resample      int
	DoResize      bool
	DoRescale     bool
	RescaleFactor float64
	DoNormalize   bool
	Mean, Std     [3]float64 // RGB
}

// Processor converts images to pixel_values. It caches resampling
// coefficients per input size (a camera's frames all have one size), and
// is safe for concurrent use.
type Processor struct {
	cfg Config
	// lut[c][v] is the final float for channel c (RGB) and byte v: rescale
	// and normalize folded into one table, computed in float32 in the
	// order transformers does it.
	lut    [3][256]float32
	filter filter
	mu     sync.Mutex
	plans  map[[2]int]*plan
}

// New checks cfg and returns a Processor.
func New(cfg Config) (*Processor, error) {
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("image size %dx%d must be positive", cfg.Width, cfg.Height)
	}
	f, ok := filters[cfg.Resample]
	if !ok && cfg.DoResize {
		return nil, fmt.Errorf("resample %d is not supported (want 1 lanczos, 2 bilinear, 3 bicubic, 4 box or 5 hamming)", cfg.Resample)
	}
	p := &Processor{cfg: cfg, filter: f, plans: map[[2]int]*plan{}}
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v)
			if cfg.DoRescale {
				x = float32(float64(v) * cfg.RescaleFactor) // numpy: float64 multiply, then astype(float32)
			}
			if cfg.DoNormalize {
				x = (x - float32(cfg.Mean[c])) / float32(cfg.Std[c])
			}
			p.lut[c][v] = x
		}
	}
	return p, nil
}

// Config returns the processor's configuration.
func (p *Processor) Config() Config { return p.cfg }

// PlaneSize is the number of floats one image takes: 3·Height·Width.
func (p *Processor) PlaneSize() int { return 3 * p.cfg.Width * p.cfg.Height }

// Process writes img's pixel_values (RGB planes, Height×Width each) into
// dst, which must hold PlaneSize floats — typically one image's slot in a
// preallocated batch tensor.
func (p *Processor) Process(img Image, dst []float32) error {
	w, h := p.cfg.Width, p.cfg.Height
	if len(dst) != 3*w*h {
		return fmt.Errorf("destination holds %d floats, want %d", len(dst), 3*w*h)
	}
	if img.Width <= 0 || img.Height <= 0 || img.Stride < 3*img.Width || len(img.Pix) < (img.Height-1)*img.Stride+3*img.Width {
		return fmt.Errorf("invalid image %dx%d (stride %d, %d bytes)", img.Width, img.Height, img.Stride, len(img.Pix))
	}
	if !p.cfg.DoResize || (img.Width == w && img.Height == h) {
		if img.Width != w || img.Height != h {
			return fmt.Errorf("image is %dx%d; without resizing the model needs %dx%d", img.Width, img.Height, w, h)
		}
		p.store(img.Pix, img.Stride, dst)
		return nil
	}
	pl := p.plan(img.Width, img.Height)
	out := getBuffer(&pl.outPool, 3*w*h)
	pl.resize(img, *out)
	p.store(*out, 3*w, dst)
	pl.outPool.Put(out)
	return nil
}

// store writes an RGB-normalized copy of a BGR image of the target size.
func (p *Processor) store(pix []byte, stride int, dst []float32) {
	w, h := p.cfg.Width, p.cfg.Height
	plane := w * h
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+3*w]
		o := y * w
		for x := 0; x < w; x++ {
			px := row[3*x : 3*x+3]
			b[o+x] = p.lut[2][px[0]] // OpenCV frames are BGR
			g[o+x] = p.lut[1][px[1]]
			r[o+x] = p.lut[0][px[2]]
		}
	}
}

// ---- Pillow's resampling ----

type filter struct {
	fn      func(float64) float64
	support float64
}

// filters are Pillow's (libImaging/Resample.c).
var filters = map[int]filter{
	Box:      {boxFilter, 0.5},
	Bilinear: {bilinearFilter, 1},
	Hamming:  {hammingFilter, 1},
	Bicubic:  {bicubicFilter, 2},
	Lanczos:  {lanczosFilter, 3},
}

func boxFilter(x float64) float64 {
	if x > -0.5 && x <= 0.5 {
		return 1
	}
	return 0
}

func bilinearFilter(x float64) float64 {
	x = math.Abs(x)
	if x < 1 {
		return 1 - x
	}
	return 0
}

func hammingFilter(x float64) float64 {
	x = math.Abs(x)
	if x == 0 {
		return 1
	}
	if x >= 1 {
		return 0
	}
	x *= math.Pi
	// Pillow writes 0.54f and 0.46f: float constants, widened to double.
	return math.Sin(x) / x * (float64(float32(0.54)) + float64(float32(0.46))*math.Cos(x))
}

// bicubicFilter is Keys' cubic convolution with a = -0.5.
func bicubicFilter(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

func lanczosFilter(x float64) float64 {
	if -3 <= x && x < 3 {
		return sinc(x) * sinc(x/3)
	}
	return 0
}

// precisionBits is Pillow's PRECISION_BITS (32 - 8 - 2): coefficients are
// fixed-point with 22 fractional bits.
const precisionBits = 32 - 8 - 2

// coeffs is one axis's resampling plan: for output i, input pixels
// bounds[i].start .. +bounds[i].n weighted by k[i*ksize:].
type coeffs struct {
	ksize  int
	start  []int
	n      []int
	k      []int32
	resize bool
}

// precomputeCoeffs is Pillow's precompute_coeffs + normalize_coeffs_8bpc.
func precomputeCoeffs(inSize, outSize int, f filter) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1) // widen the filter when shrinking: antialiasing
	support := f.support * filterScale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, start: make([]int, outSize), n: make([]int, outSize), k: make([]int32, outSize*ksize), resize: inSize != outSize}
	kk := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterScale
		xmin := max(int(center-support+0.5), 0) // C casts truncate toward zero, as int() does
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w := f.fn((float64(x+xmin) - center + 0.5) * ss)
			kk[x] = w
			ww += w
		}
		for x := 0; x < xmax; x++ {
			w := kk[x]
			if ww != 0 {
				w /= ww
			}
			if w < 0 {
				c.k[xx*ksize+x] = int32(-0.5 + w*(1<<precisionBits))
			} else {
				c.k[xx*ksize+x] = int32(0.5 + w*(1<<precisionBits))
			}
		}
		c.start[xx], c.n[xx] = xmin, xmax
	}
	return c
}

func clip8(v int32) byte {
	if v >= 1<<precisionBits<<8 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return byte(v >> precisionBits)
}

// plan is the resampling of one input size to the target size.
type plan struct {
	horiz, vert coeffs
	outW, outH  int
	rowFirst    int // first and one-past-last input rows the vertical pass reads
	rowLast     int
	// Scratch buffers, reused across frames of this size.
	tmpPool, outPool sync.Pool
}

func (p *Processor) plan(inW, inH int) *plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := [2]int{inW, inH}
	if pl, ok := p.plans[key]; ok {
		return pl
	}
	w, h := p.cfg.Width, p.cfg.Height
	pl := &plan{horiz: precomputeCoeffs(inW, w, p.filter), vert: precomputeCoeffs(inH, h, p.filter), outW: w, outH: h}
	pl.rowFirst = pl.vert.start[0]
	pl.rowLast = pl.vert.start[h-1] + pl.vert.n[h-1]
	p.plans[key] = pl
	return pl
}

// resize is Pillow's ImagingResampleInner: horizontal pass first, over only
// the rows the vertical pass will read, then the vertical pass. Either pass
// is skipped when its size does not change. out receives outW×outH BGR.
func (pl *plan) resize(img Image, out []byte) {
	src, stride := img.Pix, img.Stride
	rowOffset := 0
	width := 3 * pl.outW
	if pl.horiz.resize {
		rows := pl.rowLast - pl.rowFirst
		dst := out
		if pl.vert.resize {
			tmp := getBuffer(&pl.tmpPool, rows*width)
			defer pl.tmpPool.Put(tmp)
			dst = *tmp
		}
		h := pl.horiz
		for y := 0; y < rows; y++ {
			in := src[(y+pl.rowFirst)*stride:]
			o := dst[y*width : (y+1)*width]
			for xx := 0; xx < pl.outW; xx++ {
				k := h.k[xx*h.ksize : xx*h.ksize+h.n[xx]]
				base := 3 * h.start[xx]
				var s0, s1, s2 int32 = 1 << (precisionBits - 1), 1 << (precisionBits - 1), 1 << (precisionBits - 1)
				for x, w := range k {
					px := in[base+3*x : base+3*x+3]
					s0 += int32(px[0]) * w
					s1 += int32(px[1]) * w
					s2 += int32(px[2]) * w
				}
				o[3*xx], o[3*xx+1], o[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
		if !pl.vert.resize {
			return
		}
		src, stride, rowOffset = dst, width, pl.rowFirst
	}
	v := pl.vert
	for yy := 0; yy < pl.outH; yy++ {
		k := v.k[yy*v.ksize : yy*v.ksize+v.n[yy]]
		first := v.start[yy] - rowOffset
		o := out[yy*width : (yy+1)*width]
		for x := 0; x < width; x++ {
			var s int32 = 1 << (precisionBits - 1)
			for y, w := range k {
				s += int32(src[(first+y)*stride+x]) * w
			}
			o[x] = clip8(s)
		}
	}
}

// getBuffer takes an n-byte scratch buffer from pool (Put it back after use).
func getBuffer(pool *sync.Pool, n int) *[]byte {
	if b, ok := pool.Get().(*[]byte); ok && len(*b) == n {
		return b
	}
	b := make([]byte, n)
	return &b
}

// FromImage converts a Go image to a BGR Image (for files read with the
// image package; camera frames are BGR already).
func FromImage(src image.Image) Image {
	b := src.Bounds()
	out := Image{Width: b.Dx(), Height: b.Dy(), Stride: 3 * b.Dx(), Pix: make([]byte, 3*b.Dx()*b.Dy())}
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
			o := y*out.Stride + 3*x
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = byte(bl>>8), byte(g>>8), byte(r>>8)
		}
	}
	return out
}
