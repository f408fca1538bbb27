// Command soak runs four cameras through the capture package for a long time
// and reports whether memory stays flat: the issue's "RSS of a 10-minute
// 4-camera soak grows by less than 10% after warm-up".
//
// Three cameras are real RTSP streams (scripts/rtsp-server.py, 640×360 at
// 25 fps) and one is a looping file. While it runs it keeps misbehaving the
// way cameras do, so the reconnect and watchdog paths are soaked too: every
// cycle one server stalls for longer than read_timeout (the reader is
// abandoned) and another is killed and restarted. A consumer takes frames
// from Latest and does a little work on each, as inference would.
//
//	scripts/soak-capture.sh            # 10 minutes, the soak
//	go run ./capture/cmd/soak -duration 2m -warmup 30s
//
// It prints a line every 10 s and a summary; it exits 1 when RSS grew by 10%
// or more after warm-up, or a camera stopped delivering.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"image"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/internal/testenv"
	"gocv.io/x/gocv"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	warmup := flag.Duration("warmup", time.Minute, "RSS growth is measured from the end of this")
	cycle := flag.Duration("cycle", 90*time.Second, "one stall and one server restart per cycle (at least 30s); 0 disables")
	script := flag.String("script", "scripts/rtsp-server.py", "the RTSP test server")
	tune := flag.Bool("tune-malloc", true, "call capture.TuneMalloc, as siglipd does (false: glibc's defaults)")
	flag.Parse()
	if *tune {
		fmt.Println("soak: capture.TuneMalloc applied:", capture.TuneMalloc())
	}
	if err := run(*duration, *warmup, *cycle, *script); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(duration, warmup, cycle time.Duration, script string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	tmp, err := os.MkdirTemp("", "siglipd-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	video := filepath.Join(tmp, "demo.mp4")
	if err := testenv.MakeVideo("ffmpeg", video, testenv.VideoOptions{Width: 640, Height: 360, FPS: 25, Duration: 10 * time.Second}); err != nil {
		return err
	}

	var servers []*testenv.RTSPServer
	defer func() {
		for _, s := range servers {
			s.Stop()
		}
	}()
	fail := func(format string, args ...any) { log.Panicf(format, args...) } // unwinds through the deferred Stops
	logf := func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }
	var opts []capture.Options
	for i := range 3 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s := testenv.LaunchRTSP(script, testenv.RTSPOptions{Port: port, Pattern: "ball"}, fail, logf)
		servers = append(servers, s)
		opts = append(opts, capture.Options{Name: fmt.Sprintf("rtsp%d", i+1), URL: s.URL(), FPS: 2})
	}
	opts = append(opts, capture.Options{Name: "file", URL: video, FPS: 2, Loop: true})

	l := capture.NewLatest()
	defer l.Close()
	var sources []capture.Source
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	for _, o := range opts {
		o.Logger = logger
		o.Crop = &capture.Crop{X: 0.1, Y: 0.1, Width: 0.8, Height: 0.8}
		src, err := capture.New(o)
		if err != nil {
			return err
		}
		sources = append(sources, src)
		wg.Go(func() { src.Run(runCtx, l) })
	}
	wg.Go(func() { consume(runCtx, l) })

	began := time.Now()
	var warmRSS, maxRSS int64
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	if cycle > 0 {
		wg.Go(func() { disrupt(runCtx, servers, cycle) })
	}
	fmt.Printf("soak: %d cameras for %s (warm-up %s), disruptions every %s\n", len(sources), duration, warmup, cycle)
	fmt.Printf("%8s %8s %8s %8s %8s %7s %5s  %s\n", "elapsed", "rss_MiB", "go_MiB", "c_used", "c_held", "threads", "mats", "cameras (state out/reconnects/stalls/abandoned)")
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-report.C:
			elapsed := time.Since(began)
			rss := rssBytes()
			maxRSS = max(maxRSS, rss)
			if warmRSS == 0 && elapsed >= warmup {
				warmRSS = rss
			}
			fmt.Printf("%8s %8.1f %8.1f %8.1f %8.1f %7d %5s  %s\n", elapsed.Round(time.Second), mib(rss), mib(heapBytes()),
				mib(cInUse()), mib(cHeld()), threads(), matCount(), summary(sources))
			done = elapsed >= duration
		}
	}

	endRSS := rssBytes()
	growth := float64(endRSS-warmRSS) / float64(warmRSS) * 100
	fmt.Printf("\nsoak: RSS after warm-up %.1f MiB, at end %.1f MiB (%+.1f%%), max %.1f MiB\n", mib(warmRSS), mib(endRSS), growth, mib(maxRSS))
	var problems []string
	for _, src := range sources {
		st := src.Status()
		fmt.Printf("soak: %-6s %-12s read %d, out %d (%.2f/s), reconnects %d, stalls %d, abandoned now %d, drops %d\n",
			st.Name, st.State, st.FramesDecoded, st.FramesSampled, float64(st.FramesSampled)/time.Since(began).Seconds(),
			st.Reconnects, st.Stalls, st.AbandonedReaders, l.Dropped(st.Name))
		if time.Since(st.LastFrame) > 30*time.Second {
			problems = append(problems, fmt.Sprintf("%s delivered nothing in the last 30 s", st.Name))
		}
	}
	if growth >= 10 {
		problems = append(problems, fmt.Sprintf("RSS grew %.1f%% after warm-up (limit 10%%)", growth))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	fmt.Println("soak: ok")
	return nil
}

// disrupt misbehaves like real cameras, once per cycle: one server stalls
// past read_timeout (10 s), so the watchdog abandons a reader, then another
// is killed for 5 s and restarted. It is the only goroutine that touches the
// servers while the soak runs.
func disrupt(ctx context.Context, servers []*testenv.RTSPServer, cycle time.Duration) {
	for i := 0; ; i++ {
		if !sleepCtx(ctx, cycle-20*time.Second) {
			return
		}
		a, b := servers[i%len(servers)], servers[(i+1)%len(servers)]
		a.Stall()
		ok := sleepCtx(ctx, 15*time.Second)
		a.Resume()
		if !ok {
			return
		}
		b.Stop()
		ok = sleepCtx(ctx, 5*time.Second)
		b.Start()
		if !ok {
			return
		}
	}
}

// consume is a stand-in for inference: it resizes each frame's crop to the
// model's input size and closes the frame.
func consume(ctx context.Context, l *capture.Latest) {
	small := gocv.NewMat()
	defer small.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.Ready():
		}
		for _, f := range l.Take(8) {
			roi := f.Mat.Region(f.Region)
			gocv.Resize(roi, &small, image.Pt(224, 224), 0, 0, gocv.InterpolationArea)
			roi.Close()
			f.Close()
		}
	}
}

func summary(sources []capture.Source) string {
	var parts []string
	for _, src := range sources {
		st := src.Status()
		parts = append(parts, fmt.Sprintf("%s:%s %d/%d/%d/%d", st.Name, st.State, st.FramesSampled, st.Reconnects, st.Stalls, st.AbandonedReaders))
	}
	return strings.Join(parts, " ")
}

// sleepCtx waits d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func heapBytes() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rssBytes is VmRSS from /proc/self/status.
func rssBytes() int64 { return procStatus("VmRSS") << 10 }

// threads is the process's OS thread count: each call stuck in OpenCV holds one.
func threads() int64 { return procStatus("Threads") }

// procStatus reads a number from /proc/self/status (kB for sizes).
func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
