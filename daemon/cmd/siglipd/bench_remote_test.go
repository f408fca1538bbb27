package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// BenchmarkRemote is `make bench-remote`: what the remote backend costs on
// loopback, measured in one run on this machine, with MLServer serving the
// base preset's towers through ONNX Runtime in another process:
//
//   - the vision tower at batch 1/4/8, local against remote on the same
//     frames in alternating rounds (`siglipd bench --remote`): the
//     protocol's overhead per batch;
//   - the whole daemon, four 640×360 cameras at full load: local, remote,
//     and two daemons sharing the one server.
//
// On one machine the server and the daemons share its cores, so a remote
// row shows the protocol's cost, not a GPU server's gain.
//
//	go test -run '^$' -bench Remote -benchtime 1x ./daemon/cmd/siglipd
func BenchmarkRemote(b *testing.B) {
	model := benchModelDir(b)
	lib := testenv.ORTLib(b)
	ffmpeg := testenv.LookPath(b, "ffmpeg")
	window := envDuration(b, "SIGLIPD_BENCH_WINDOW", 40*time.Second)
	for range b.N {
		srv := testenv.StartMLServerWith(b, testenv.Towers(model, ""), testenv.MLServerOptions{Threads: 0})
		url := "grpc://" + srv.Addr()
		runs := "5"
		if s := os.Getenv("SIGLIPD_BENCH_RUNS"); s != "" {
			runs = s
		}
		cmd := exec.Command(siglipdBin, "bench", "--model", model, "--variant", "fp32", "--batch", "1,4,8", "--runs", runs,
			"--frame", "640x360", "--remote", url, "--json")
		cmd.Env = append(os.Environ(), "SIGLIPD_ORT_LIB="+lib)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("siglipd bench --remote: %v", err)
		}
		var tower benchReport
		if err := json.Unmarshal(out, &tower); err != nil {
			b.Fatal(err)
		}
		b.Logf("tower: measured")

		videos := makeBenchVideos(b, ffmpeg)
		broker := testenv.StartMosquitto(b)
		sub := subscribeEvents(b, broker.URL())
		thresholds := calibrate(b, lib, model, ffmpeg, videos)
		base := scenario{name: "4 cameras 640×360, 4 labels", video: "alt360", cameras: 4, fps: 2, labels: 4}
		local, remote, two := base, base, base
		remote.remote, remote.serverPid = url, srv.Pid()
		two.remote, two.serverPid, two.daemons = url, srv.Pid(), 2
		var rows []daemonRow
		for _, sc := range []scenario{local, remote, two} {
			rows = append(rows, runScenario(b, lib, model, broker, sub, videos, thresholds, sc, window))
			b.Logf("%s, %d daemon(s), %s: measured", sc.name, max(sc.daemons, 1), cmpOr(sc.remote, "local"))
		}
		report := remoteTable(model, tower, rows)
		fmt.Println(report)
		if p := os.Getenv("SIGLIPD_BENCH_OUT"); p != "" {
			if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
				b.Error(err)
			}
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func remoteTable(model string, tower benchReport, rows []daemonRow) string {
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	w("siglipd remote backend on loopback, %s: %s, %d cores; ONNX Runtime %s here, MLServer 1.7.1 with ONNX Runtime 1.30.0 "+
		"(scripts/oip/onnx_runtime.py) as the server; model %s (%dx%d), fp32\n\n",
		tower.Date, tower.CPU, runtime.NumCPU(), tower.ORTVersion, filepath.Base(model), tower.ImageWidth, tower.ImageHeight)
	w("Vision tower, same %dx%d frames, local and remote in alternating rounds (%d rounds)\n\n", tower.ImageWidth, tower.ImageHeight, tower.Runs)
	w("| batch | local images/s | remote images/s | remote / local | local ms per batch | remote ms per batch | overhead ms per batch |\n|---|---|---|---|---|---|---|\n")
	for _, r := range tower.Rows {
		w("| %d | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f |\n", r.Batch, r.SiglipdImagesPerSec, r.RemoteImagesPerSec,
			r.RemoteImagesPerSec/r.SiglipdImagesPerSec, r.SiglipdMSPerBatch, r.RemoteMSPerBatch, r.RemoteMSPerBatch-r.SiglipdMSPerBatch)
	}
	w("\nWhole daemon: four 640×360 cameras per daemon at 2 fps (full load), 4 labels, events to mosquitto\n\n")
	w("| backend | daemons | sampled/s | scored/s | dropped/s | mean batch | frame→event ms p50 / p99 (events) | mean batch run ms | daemon CPU cores | server CPU cores |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		backend := "local"
		if r.sc.remote != "" {
			backend = "remote"
		}
		lat := slices.Clone(r.latencies)
		slices.Sort(lat)
		latency := "no events"
		if len(lat) > 0 {
			latency = fmt.Sprintf("%s / %s (%d)", ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), len(lat))
		}
		server := "—"
		if r.sc.remote != "" {
			server = strconv.FormatFloat(r.serverCPU.Seconds()/r.seconds, 'f', 2, 64)
		}
		w("| %s | %d | %.2f | %.2f | %.2f | %.1f | %s | %s | %.2f | %s |\n", backend, max(r.sc.daemons, 1), r.sampled/r.seconds,
			r.scored/r.seconds, r.dropped/r.seconds, r.scored/max(r.batches, 1), latency, ms(r.batchRun), r.cpu.Seconds()/r.seconds, server)
	}
	w("\nOne machine: the server and the daemons share its cores, so remote rows show the protocol's cost, not a GPU\n" +
		"server's gain. scored/s of two daemons is their sum.\n")
	return s.String()
}
