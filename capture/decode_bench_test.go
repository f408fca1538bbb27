package capture

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkDecodeCameras is the cost of decoding H.264 (every frame, as
// capture does) for 1, 2 and 4 cameras decoding at once, 1080p25 and
// 360p25: decoded frames per second over all cameras and CPU milliseconds
// per frame (getrusage). Content is moving and noisy, as a camera's is: a
// still test pattern decodes several times faster. Run it alone:
//
//	go test -run '^$' -bench DecodeCameras -benchtime 2x ./capture/
//
// FFmpeg's decoder threading cannot be set through OpenCV 4.6 (its
// videoio has no CAP_PROP_N_THREADS, and OPENCV_FFMPEG_CAPTURE_OPTIONS
// reach the demuxer, not the decoder), so this measures the default.
func BenchmarkDecodeCameras(b *testing.B) {
	for _, size := range []struct {
		name string
		w, h int
	}{{"1080p", 1920, 1080}, {"360p", 640, 360}} {
		video := testenv.VideoFile(b, testenv.VideoOptions{Name: size.name + ".mp4", Width: size.w, Height: size.h, FPS: 25,
			Duration: 4 * time.Second, Source: "testsrc2", Filter: "noise=alls=24:allf=t+u"})
		for _, cams := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/cameras=%d", size.name, cams), func(b *testing.B) {
				var frames atomic.Int64
				cpu0 := cpuTime()
				for b.Loop() {
					var wg sync.WaitGroup
					for range cams {
						wg.Add(1)
						go func() {
							defer wg.Done()
							vc := openFFmpeg(video, 10*time.Second, 10*time.Second)
							if vc == nil {
								b.Error("open failed")
								return
							}
							defer vc.close()
							for vc.grab() {
								frames.Add(1)
							}
						}()
					}
					wg.Wait()
				}
				n := float64(frames.Load())
				b.ReportMetric(n/b.Elapsed().Seconds(), "frames/s")
				b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/n, "cpu-ms/frame")
			})
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
