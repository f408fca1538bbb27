package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/siglipd/siglipd/daemon"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// TestEventsAlwaysEnd: on either sink, an event open when siglipd stops
// gets its end before siglipd exits, and one open when siglipd is killed
// (SIGKILL) gets its end from the next run. Every event delivered appears
// exactly once as an "event" log line, and once in siglipd_events_total
// (scraped while the run that sent it is up; the ends sent during shutdown
// leave no process to scrape, so they are checked in the log).
func TestEventsAlwaysEnd(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	for _, sink := range []string{"stdout", "mqtt"} {
		t.Run(sink, func(t *testing.T) {
			cam := testenv.StartRTSP(t, testenv.RTSPOptions{Width: 320, Height: 240, Color: "ff0000"})
			var broker *testenv.Mosquitto
			var sub *testenv.Subscriber
			mqttSection := ""
			if sink == "mqtt" {
				broker = testenv.StartMosquitto(t)
				sub = testenv.SubscribeAll(t, broker.URL(), "", "")
				mqttSection = fmt.Sprintf("mqtt: {broker: %q}\n", broker.URL())
			}
			state := t.TempDir()
			// Each run gets its own HTTP port; the state folder is shared.
			config := func() (string, int) {
				port := testenv.FreePort(t)
				return writeConfig(t, fmt.Sprintf(`model: {path: %s}
state_dir: %s
sink: %s
%shttp: {listen: "127.0.0.1:%d"}
cameras:
  - {name: porch, url: %q, fps: 4, labels: [{name: red, threshold: 0.5, min_frames: 1, off_frames: 2}]}
`, testenv.Model(t, "colour"), state, sink, mqttSection, port, cam.URL())), port
			}

			// 1. A clean stop ends the open event.
			r1 := startSiglipd(t, lib, config, sub)
			start := r1.waitEvent(t, sub, rules.TypeStart, "", 60*time.Second)
			r1.checkCounted(t, start)
			r1.stop(t, syscall.SIGTERM)
			end := r1.waitEvent(t, sub, rules.TypeEnd, start.ID, 5*time.Second)
			t.Logf("stopped: %s ended at %s", start.ID, end.EndTime.Format(time.RFC3339Nano))
			r1.checkLogged(t, start, end)

			// 2. SIGKILL with an event open: the next run ends it.
			r2 := startSiglipd(t, lib, config, sub)
			open := r2.waitEvent(t, sub, rules.TypeStart, "", 60*time.Second)
			r2.stop(t, syscall.SIGKILL)
			if ev, ok := r2.event(sub, rules.TypeEnd, open.ID); ok {
				t.Fatalf("a killed run sent an end: %+v", ev)
			}
			cam.SetColor(color.RGBA{128, 128, 128, 255}) // nothing red: the next run starts nothing
			r3 := startSiglipd(t, lib, config, sub)
			recovered := r3.waitEvent(t, sub, rules.TypeEnd, open.ID, 60*time.Second)
			t.Logf("killed: %s ended by the next run at %s", open.ID, recovered.EndTime.Format(time.RFC3339Nano))
			r3.checkCounted(t, recovered)
			r3.stop(t, syscall.SIGTERM)
			r3.checkLogged(t, recovered)
			if n := r3.count(sub, rules.TypeEnd, open.ID); n != 1 {
				t.Errorf("%s ended %d times, want once", open.ID, n)
			}
		})
	}
}

// siglipdRun is the built siglipd running as a child process.
type siglipdRun struct {
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stdout []rules.Event // events it printed (stdout sink)
	from   int           // MQTT messages received before it started: not its own
	logs   testenv.SyncBuffer
	exited chan struct{}
}

func startSiglipd(t *testing.T, lib string, config func() (string, int), sub *testenv.Subscriber) *siglipdRun {
	t.Helper()
	path, port := config()
	r := &siglipdRun{exited: make(chan struct{}), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if sub != nil {
		r.from = sub.Count()
	}
	r.cmd = exec.Command(siglipdBin, "--config", path)
	r.cmd.Env = append(r.cmd.Environ(), "SIGLIPD_ORT_LIB="+lib)
	r.cmd.Stderr = &r.logs
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the process: ends when it closes stdout
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev rules.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				r.mu.Lock()
				r.stdout = append(r.stdout, ev)
				r.mu.Unlock()
			}
		}
		r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.exited })
	return r
}

// events is what subscribers got from this run: its stdout, or the events
// on the broker (sub) since it started, when the sink is MQTT.
func (r *siglipdRun) events(sub *testenv.Subscriber) []rules.Event {
	if sub != nil {
		var evs []rules.Event
		for _, m := range sub.Since(r.from) {
			if payload, ok := strings.CutPrefix(m, "siglipd/events "); ok {
				var ev rules.Event
				if json.Unmarshal([]byte(payload), &ev) == nil {
					evs = append(evs, ev)
				}
			}
		}
		return evs
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rules.Event(nil), r.stdout...)
}

func (r *siglipdRun) event(sub *testenv.Subscriber, typ, id string) (rules.Event, bool) {
	for _, ev := range r.events(sub) {
		if ev.Type == typ && (id == "" || ev.ID == id) {
			return ev, true
		}
	}
	return rules.Event{}, false
}

func (r *siglipdRun) count(sub *testenv.Subscriber, typ, id string) int {
	n := 0
	for _, ev := range r.events(sub) {
		if ev.Type == typ && ev.ID == id {
			n++
		}
	}
	return n
}

func (r *siglipdRun) waitEvent(t *testing.T, sub *testenv.Subscriber, typ, id string, within time.Duration) rules.Event {
	t.Helper()
	var ev rules.Event
	if !testenv.Eventually(within, func() bool { var ok bool; ev, ok = r.event(sub, typ, id); return ok }) {
		t.Fatalf("no %s event %s within %s; log:\n%s", typ, id, within, r.logs.String())
	}
	return ev
}

func (r *siglipdRun) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
	case <-time.After(daemon.ShutdownTimeout + 5*time.Second):
		t.Fatalf("siglipd did not exit after %s; log:\n%s", sig, r.logs.String())
	}
}

// checkCounted: siglipd_events_total counts ev exactly once (scraped now).
func (r *siglipdRun) checkCounted(t *testing.T, ev rules.Event) {
	t.Helper()
	var n float64
	testenv.WaitFor(t, 5*time.Second, func() bool {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(get(r.base + "/metrics")))
		if err != nil {
			return false
		}
		n = 0
		for _, m := range fams["siglipd_events_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["camera"] == ev.Camera && labels["label"] == ev.Label && labels["type"] == ev.Type {
				n += m.GetCounter().GetValue()
			}
		}
		return n == 1
	}, "siglipd_events_total{type=%q} = 1 (is %g)", ev.Type, n)
}

// checkLogged: each event appears exactly once as an "event" log line, and
// no other event line was logged.
func (r *siglipdRun) checkLogged(t *testing.T, evs ...rules.Event) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, "msg=event ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != len(evs) {
		t.Errorf("%d event log lines, want %d:\n%s", len(lines), len(evs), strings.Join(lines, "\n"))
	}
	for _, ev := range evs {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "type="+ev.Type+" ") && strings.Contains(l, "id="+ev.ID) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s %s logged %d times, want once", ev.Type, ev.ID, n)
		}
	}
}
