package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// TestFullStateDir: the state folder on a disk filled to the brim while
// events flow. See stateDirFault.
func TestFullStateDir(t *testing.T) {
	testenv.Integration(t)
	stateDirFault(t, "disk full", (*testenv.Disk).Fill, (*testenv.Disk).Free)
}

// TestReadOnlyStateDir: the state folder's disk remounted read-only, as the
// kernel does to an SD card after errors, while events flow. See
// stateDirFault.
func TestReadOnlyStateDir(t *testing.T) {
	testenv.Integration(t)
	stateDirFault(t, "read-only", (*testenv.Disk).ReadOnly, (*testenv.Disk).Writable)
}

// stateDirFault runs the daemon (fake model, a file camera turning blue
// and black every second, MQTT to a real mosquitto) with its state folder
// on a small tmpfs, then breaks the disk (start) and mends it (stop):
//
//   - while it is broken every event reaches a subscriber at once; the
//     outbox and journal failures are counted (one per event), the history
//     saves too, /readyz stays ready and /api/status names the files;
//   - the log has one warning per file, naming the cause, and nothing else
//     above INFO; the process uses well under a core (no busy loop);
//   - a threshold or a mark from the page is refused with 503 and changes
//     nothing; every file on disk is the old one, whole;
//   - once the disk works everything is written again by itself (one line
//     per file with its count) and a restart finds all of it.
func stateDirFault(t *testing.T, cause string, start, stop func(*testenv.Disk)) {
	disk := testenv.SmallDisk(t, 4<<20)
	broker := testenv.StartMosquitto(t)
	sub := subscribe(t, broker.URL(), "siglipd/events")
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=black", Duration: 4 * time.Second,
		Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='lt(mod(t,2),1)'"})
	config := fmt.Sprintf(`
state_dir: %s
model: {path: %s}
mqtt: {broker: %s, client_id: disk}
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 10,
           labels: [{name: blue, threshold: 0.5, off_threshold: 0.4, min_frames: 1, off_frames: 1, cooldown: 0s}]}]
`, disk.Dir, filepath.Join(t.TempDir(), "no-model"), broker.URL(), video)
	hooks := func(h *hooks) { h.classifier, h.historySaveEvery = &fakeModel{}, 300*time.Millisecond }
	r := startDaemon(t, config, hooks)
	emitted := func(from int) int { return strings.Count(r.logs.String()[from:], "msg=event ") }
	received := func() int { evs, _ := sub.events(); return len(evs) }
	historyPath := filepath.Join(disk.Dir, historyFile)
	testenv.WaitFor(t, 20*time.Second, func() bool { _, err := os.Stat(historyPath); return received() >= 2 && err == nil },
		"two events delivered and the history saved")

	// Before: two marks, and the threshold they suggest applied.
	mark := func(yes bool) (int, []byte) {
		for range 20 {
			testenv.WaitFor(t, 10*time.Second, func() bool {
				p := r.camera("door").Labels[0].Probability
				return p != nil && (*p > 0.5) == yes
			}, "a frame to mark %v", yes)
			code, body := r.post("/api/marks", fmt.Sprintf(`{"camera":"door","label":"blue","yes":%v}`, yes), "application/json", "")
			var m httpapi.MarkInfo
			if code != http.StatusCreated || json.Unmarshal(body, &m) != nil || (m.Score > 0.5) == yes {
				return code, body
			}
			req, _ := http.NewRequest(http.MethodDelete, r.base+"/api/marks/"+m.ID, nil)
			if resp, err := testClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		t.Fatal("no mark with the wanted score after 20 tries")
		return 0, nil
	}
	for _, yes := range []bool{true, false} {
		if code, body := mark(yes); code != http.StatusCreated {
			t.Fatalf("mark %v: %d %s", yes, code, body)
		}
	}
	apply := func(on bool) (int, []byte) {
		return r.post("/api/calibration", fmt.Sprintf(`{"camera":"door","label":"blue","apply":%v}`, on), "application/json", "")
	}
	if code, body := apply(true); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, body)
	}
	applied := r.camera("door").Labels[0].Threshold
	testenv.WaitFor(t, 10*time.Second, func() bool { return received() >= 4 }, "events with the applied threshold %g", applied)

	// Every file is in the metric from the start, at 0: a counter that
	// appears at 1 shows no increase to an alert.
	if got := stateFailures(r); len(got) != 6 || got["outbox"]+got["retained"]+got["journal"]+got["history"]+got["calibration"]+got["labels"] != 0 {
		t.Errorf("siglipd_state_write_failures_total before the fault: %v; want outbox, retained, journal, history, calibration and labels at 0", got)
	}

	// The disk breaks. What is on it once the first write has failed (a
	// write under way as it broke may end after it) must stay so.
	// The counts are compared from here on, so take them where every event
	// logged has arrived: an event logged but still on its way would be
	// counted on one side only.
	var logFrom, receivedBefore, beforeFault int
	testenv.WaitFor(t, 5*time.Second, func() bool {
		logFrom = len(r.logs.String())
		beforeFault = emitted(0)
		receivedBefore = received()
		return receivedBefore == beforeFault && len(r.logs.String()) == logFrom
	}, "a moment with every logged event received")
	start(disk)
	cpu0, wall0 := cpuTime(), time.Now()
	testenv.WaitFor(t, 10*time.Second, func() bool { return stateFailures(r)["journal"] > 0 }, "a journal save to fail")
	before := readState(t, disk.Dir)
	testenv.WaitFor(t, 20*time.Second, func() bool { return emitted(logFrom) >= 6 }, "six events while the disk is %s", cause)
	testenv.WaitFor(t, 5*time.Second, func() bool { return received()-receivedBefore == emitted(logFrom) },
		"every event emitted while the disk is %s to reach the subscriber (emitted %d, received %d)", cause,
		emitted(logFrom), received()-receivedBefore)
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	t.Logf("%s: %d events emitted and received in %s, CPU %s (%.1f%% of a core)", cause, emitted(logFrom),
		wall.Round(time.Millisecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
	if cpu > wall/2 {
		t.Errorf("CPU %s over %s: more than half a core, as a busy loop would take", cpu, wall)
	}
	if code, body := apply(false); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "nothing changed") {
		t.Errorf("returning to the config's threshold on a %s disk: %d %s; want 503 saying nothing changed", cause, code, body)
	}
	if th := r.camera("door").Labels[0].Threshold; th != applied {
		t.Errorf("threshold %g in force after a refused change, want %g", th, applied)
	}
	if code, body := r.post("/api/marks", `{"camera":"door","label":"blue","yes":true}`, "application/json", ""); code != http.StatusServiceUnavailable {
		t.Errorf("a mark on a %s disk: %d %s; want 503", cause, code, body)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return stateFailures(r)["history"] >= 2 }, "two failed history saves")
	if code, body := r.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz on a %s disk: %d %s; want ready (events are still published)", cause, code, body)
	}
	failing := map[string]string{}
	for _, f := range r.status().State.Files {
		failing[f.File] = f.Error
	}
	for _, f := range []string{"outbox", "journal", "history", "calibration"} {
		if failing[f] == "" {
			t.Errorf("/api/status: %s not failing on a %s disk: %+v", f, cause, r.status().State)
		}
	}
	if after := readState(t, disk.Dir); after.String() != before.String() {
		t.Errorf("state files changed on a %s disk:\nbefore %s\nafter  %s", cause, before, after)
	}
	faultLog := r.logs.String()[logFrom:]
	faultEvents := emitted(logFrom)
	counts := stateFailures(r)

	// A stop and a start while the disk is broken: the last events are
	// delivered, and the new run starts and publishes.
	r.stop()
	testenv.WaitFor(t, 5*time.Second, func() bool { return received() == emitted(0) }, "every event of the first run at the subscriber")
	firstRun := emitted(0)
	r2 := startDaemon(t, config, hooks)
	emitted2 := func(from int) int { return strings.Count(r2.logs.String()[from:], "msg=event ") }
	testenv.WaitFor(t, 20*time.Second, func() bool { return emitted2(0) >= 2 && received() == firstRun+emitted2(0) },
		"events of a run started while the disk is %s", cause)

	// The disk works again: everything is written by itself.
	stop(disk)
	logMended := len(r2.logs.String())
	testenv.WaitFor(t, 15*time.Second, func() bool {
		return strings.Count(r2.logs.String()[logMended:], "cannot write to the state folder: recovered") >= 3
	}, "the outbox, the journal and the history written again")
	if code, body := r2.post("/api/calibration", `{"camera":"door","label":"blue","apply":false}`, "application/json", ""); code != http.StatusOK {
		t.Errorf("returning to the config's threshold once the disk works: %d %s", code, body)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return received() == firstRun+emitted2(0) }, "every event at the subscriber")
	counts2 := stateFailures(r2)
	r2.stop()

	// One warning per file, naming the cause; nothing else above INFO.
	warnRe := regexp.MustCompile(`level=(WARN|ERROR) msg="cannot write to the state folder" cause="?` + cause + `"? file=(\w+)`)
	perFile := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(faultLog), "\n") {
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		m := warnRe.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("unexpected line while the disk is %s: %s", cause, line)
			continue
		}
		perFile[m[2]]++
	}
	t.Logf("%s: warnings per file %v; failed writes %v; after a restart on the broken disk %v", cause, perFile, counts, counts2)
	for _, f := range []string{"outbox", "journal", "history", "calibration"} {
		if perFile[f] != 1 {
			t.Errorf("%d warnings for %s, want 1", perFile[f], f)
		}
	}
	// One failed outbox write and one failed journal save per event.
	for _, f := range []string{"outbox", "journal"} {
		if n := counts[f]; math.Abs(n-float64(faultEvents)) > 1 {
			t.Errorf("%s: %v failed writes for %d events", f, n, faultEvents)
		}
	}
	// The count is in the line that says writes work again.
	for f, n := range counts2 {
		if n == 0 {
			continue
		}
		if want := fmt.Sprintf(`msg="cannot write to the state folder: recovered" file=%s failures=%d`, f, int(n)); !strings.Contains(r2.logs.String(), want) {
			t.Errorf("no line %q", want)
		}
	}

	// A restart finds all of it whole: no file set aside, the threshold
	// the config's, the marks, the history.
	r3 := startDaemon(t, config, hooks)
	for _, bad := range []string{"set aside", "unreadable", "not loaded", "calibration unavailable", "level=ERROR"} {
		if strings.Contains(r3.logs.String(), bad) {
			t.Errorf("after a restart the log says %q:\n%s", bad, r3.logs.String())
		}
	}
	if th := r3.camera("door").Labels[0].Threshold; th != 0.5 {
		t.Errorf("after a restart the threshold is %g, want the config's 0.5", th)
	}
	code, body := r3.get("/api/calibration?camera=door&label=blue")
	var c httpapi.Calibration
	if code != http.StatusOK || json.Unmarshal(body, &c) != nil || len(c.Marks) != 2 {
		t.Errorf("after a restart: %d %s; want the 2 marks", code, body)
	}
	// The history of the first run's last seconds, when it could not be
	// saved, is gone (the cost of a restart on a broken disk); the rest is
	// there.
	if h := r3.history("door", "blue"); len(h.Events) < (beforeFault+emitted2(0))/2-2 {
		t.Errorf("after a restart the history holds %d events; %d starts and ends came before the fault or after the restart",
			len(h.Events), beforeFault+emitted2(0))
	}
}

// stateFailures is siglipd_state_write_failures_total by file.
func stateFailures(r *running) map[string]float64 {
	out := map[string]float64{}
	if f, ok := r.metrics()["siglipd_state_write_failures_total"]; ok {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "file" {
					out[l.GetValue()] = m.Counter.GetValue()
				}
			}
		}
	}
	return out
}

// stateFiles is what the state folder holds, parsed: each file must be
// whole, whether old or new.
type stateFiles struct {
	Journal     []rules.Event
	History     int // events in the saved history
	Calibration string
	Marks       int
	JPEGs       []string // the marks' frames
	Outbox      []string // message files
	Temporary   []string // left-over temporary files (none, ever)
}

func (s stateFiles) String() string {
	type plain stateFiles // without this method
	return fmt.Sprintf("%+v", plain(s))
}

func readState(t *testing.T, dir string) stateFiles {
	t.Helper()
	var s stateFiles
	if b, err := os.ReadFile(filepath.Join(dir, journalFile)); err != nil || json.Unmarshal(b, &s.Journal) != nil {
		t.Errorf("journal: %v, %q", err, b)
	}
	h := history.New(history.Options{})
	if err := h.Load(filepath.Join(dir, historyFile), time.Now()); err != nil {
		t.Error(err)
	}
	s.History = len(h.Query("door", "blue", time.Time{}).Events)
	b, err := os.ReadFile(filepath.Join(dir, calibrationDir, "calibration.json"))
	var applied []any
	if err != nil || json.Unmarshal(b, &applied) != nil {
		t.Errorf("calibration.json: %v, %q", err, b)
	}
	s.Calibration = string(b)
	if c, err := calibrate.Open(filepath.Join(dir, calibrationDir)); err != nil {
		t.Error(err)
	} else {
		s.Marks = len(c.Marks("door", "blue", []string{"blue"}))
	}
	s.JPEGs, _ = filepath.Glob(filepath.Join(dir, calibrationDir, "*.jpg"))
	s.Outbox, _ = filepath.Glob(filepath.Join(dir, "mqtt", "*.msg"))
	filepath.WalkDir(dir, func(path string, _ os.DirEntry, _ error) error {
		if strings.HasSuffix(path, ".tmp") {
			s.Temporary = append(s.Temporary, path)
		}
		return nil
	})
	return s
}

// cpuTime is the CPU time this process (the daemon runs in it) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestJournalRetry: a journal whose save failed is saved again by retry
// once the disk works, without waiting for the next event, and not more
// often than journalRetryEvery while it does not.
func TestJournalRetry(t *testing.T) {
	testenv.Integration(t)
	disk := testenv.SmallDisk(t, 256<<10)
	var logs testenv.SyncBuffer
	files := kit.NewStateFiles(slog.New(slog.NewTextHandler(&logs, nil)))
	j, _, err := openJournal(disk.Dir, files.File("journal", journalEffect), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	ev := rules.Event{V: 1, Type: rules.TypeStart, ID: "1.0-door-blue", Camera: "door", Label: "blue", StartTime: at, FrameTime: at}
	disk.Fill()
	j.record(ev)
	for i := range 50 { // a second of ticks, every 20 ms
		j.retry(at.Add(time.Duration(i) * 20 * time.Millisecond))
	}
	if st := files.Status()[0]; st.WriteFailures != 1 || st.Error == "" {
		t.Fatalf("after a failed save and a second of retries: %+v; want 1 failure (retries are not counted), failing", st)
	}
	disk.Free()
	j.retry(at.Add(time.Second)) // within journalRetryEvery of the last try: not yet
	if files.Status()[0].Error == "" {
		t.Fatal("retried before journalRetryEvery had passed")
	}
	j.retry(at.Add(journalRetryEvery))
	b, err := os.ReadFile(filepath.Join(disk.Dir, journalFile))
	var evs []rules.Event
	if err != nil || json.Unmarshal(b, &evs) != nil || len(evs) != 1 || evs[0].ID != ev.ID {
		t.Fatalf("journal after the retry: %v, %s; want the open event", err, b)
	}
	if !strings.Contains(logs.String(), "recovered") || files.Status()[0].Error != "" {
		t.Errorf("no recovery after the retry saved the journal: %+v\n%s", files.Status(), logs.String())
	}
}
