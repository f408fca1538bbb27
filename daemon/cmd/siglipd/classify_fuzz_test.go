package main

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

// FuzzImageHeader: any bytes are either refused with an error or let
// through; what is let through never declares, in a header Go can read,
// more pixels than the cap; nothing panics or reads past the header.
func FuzzImageHeader(f *testing.F) {
	var small bytes.Buffer
	if err := png.Encode(&small, image.NewRGBA(image.Rect(0, 0, 4, 3))); err != nil {
		f.Fatal(err)
	}
	f.Add(small.Bytes())
	f.Add(pngHeader(20000, 20000))
	f.Add(pngHeader(0, 0))
	f.Add([]byte("\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03\x01\x22\x00"))                                       // JPEG SOF0, 65535×65535
	f.Add([]byte("GIF89a\xff\xff\xff\xff\x00\x00\x00"))                                                                 // GIF, 65535×65535
	f.Add([]byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\xff\xff\x00\x00\xff\xff\x00\x00")) // BMP
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8X"))
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const cap = 1_000_000
		if err := checkImageHeader(bytes.NewReader(data), cap); err != nil {
			return
		}
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil && int64(cfg.Width)*int64(cfg.Height) > cap {
			t.Fatalf("a %dx%d header passed a %d-pixel cap", cfg.Width, cfg.Height, cap)
		}
	})
}
