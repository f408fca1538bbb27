package capture

import (
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
	"gocv.io/x/gocv"
)

// BenchmarkDecode compares decoding a 1080p25 H.264 file the way gocv's Read
// does (every frame converted to BGR) with what a reader does at fps 2
// (every frame decoded, 2 of 25 converted). Run it alone:
//
//	go test -run '^$' -bench Decode -benchtime 3x ./capture/
func BenchmarkDecode(b *testing.B) {
	video := testenv.VideoFile(b, testenv.VideoOptions{Width: 1920, Height: 1080, FPS: 25, Duration: 4 * time.Second})
	for _, bm := range []struct {
		name  string
		every int // convert one frame in every
	}{
		{"convert every frame", 1},
		{"convert 2 of 25", 12},
	} {
		b.Run(bm.name, func(b *testing.B) {
			m := gocv.NewMat()
			defer m.Close()
			frames := 0
			for b.Loop() {
				vc := openFFmpeg(video, 10*time.Second, 10*time.Second)
				if vc == nil {
					b.Fatal("open failed")
				}
				for i := 0; vc.grab(); i++ {
					if i%bm.every == 0 && !vc.retrieve(&m) {
						b.Fatal("retrieve failed")
					}
					frames++
				}
				vc.close()
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
