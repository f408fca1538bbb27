package publish

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// msgFiles lists the outbox's message files.
func msgFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"+msgExt))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// TestOutboxDiskFailures: on a full disk a message is kept in memory
// (add says why), on a read-only disk a delivered message's file cannot be
// removed; once the disk works, persist writes the one and removes the
// other, and a reopened outbox holds exactly what was not delivered.
func TestOutboxDiskFailures(t *testing.T) {
	testenv.Integration(t)
	disk := testenv.SmallDisk(t, 256<<10)
	dir := filepath.Join(disk.Dir, "mqtt")
	o, _, err := openOutbox(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	add := func(payload string, want error) {
		t.Helper()
		if _, err := o.add(message{Topic: "e", Payload: []byte(payload), QoS: 1}); !errors.Is(err, want) {
			t.Fatalf("add %s: %v, want %v", payload, err, want)
		}
	}
	deliver := func() {
		t.Helper()
		r, ok := o.take()
		if !ok {
			t.Fatal("nothing to take")
		}
		o.done(r.seq)
	}
	files := func() string { return strings.Join(msgFiles(t, dir), ",") }
	add("a", nil)
	add("b", nil)

	disk.Fill()
	add("c", syscall.ENOSPC)
	if o.len() != 3 || o.memoryOnly() != 1 {
		t.Fatalf("full disk: %d messages, %d in memory only; want 3, 1", o.len(), o.memoryOnly())
	}
	if err := o.persist(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("persist on a full disk: %v", err)
	}
	disk.Free()
	if err := o.persist(); err != nil || o.memoryOnly() != 0 {
		t.Fatalf("persist once there is room: %v, %d in memory only", err, o.memoryOnly())
	}
	deliver() // a
	if got, want := files(), "00000000000000000002.msg,00000000000000000003.msg"; got != want {
		t.Fatalf("files %s, want %s (b, and c written late)", got, want)
	}

	disk.ReadOnly()
	deliver() // b: its file stays
	add("d", syscall.EROFS)
	if err := o.persist(); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("persist on a read-only disk: %v", err)
	}
	disk.Writable()
	if err := o.persist(); err != nil || len(o.stale) != 0 || o.memoryOnly() != 0 {
		t.Fatalf("persist once writable: %v, %d stale, %d in memory only", err, len(o.stale), o.memoryOnly())
	}
	o.close()

	o2, problems, err := openOutbox(dir, 10)
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	defer o2.close()
	var got []string
	for _, r := range o2.recs {
		got = append(got, string(r.msgs[0].Payload))
	}
	if strings.Join(got, ",") != "c,d" {
		t.Errorf("reopened outbox holds %v, want c,d: what was not delivered, in order", got)
	}
}

// TestMQTTDiskFailures: with the outbox on a disk that fills up, then
// turns read-only, every event still reaches a subscriber at once, in
// order; each cause is one log line, the return of writes one more with
// the count; no file of a delivered event stays behind. With the broker
// away too, the events wait in memory, are written once the disk has room,
// and a restarted sink delivers them.
func TestMQTTDiskFailures(t *testing.T) {
	testenv.Integration(t)
	disk := testenv.SmallDisk(t, 256<<10)
	b := testenv.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "node-red", true, "siglipd/events")
	opts := baseOptions(t, b.URL())
	log, lb := testLogger(t)
	opts.Logger, opts.OutboxDir = log, filepath.Join(disk.Dir, "mqtt")
	m := startSink(t, opts)
	connected(t, m.Status)
	next := 0
	send := func(n int) {
		t.Helper()
		for range n {
			m.Event(testEvent(next), nil)
			next++
		}
		testenv.WaitFor(t, 10*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) == next },
			"event %d at the subscriber", next-1)
		// Delivered is not yet acknowledged: the sink deletes an event's
		// file, and counts it out of the outbox, only at the broker's answer.
		testenv.WaitFor(t, 10*time.Second, func() bool { return m.Status().OutboxDepth == 0 }, "the events to be acknowledged")
	}
	const line = "cannot write to the state folder"
	send(2)

	disk.Fill()
	send(20)
	if n := lb.count(line, "file=outbox", `cause="disk full"`); n != 1 {
		t.Errorf("%d lines saying the outbox is on a full disk, want 1", n)
	}
	disk.Free()
	send(1)
	if n := lb.count(line+": recovered", "file=outbox", "failures=20"); n != 1 {
		t.Errorf("%d lines saying the outbox is written again after 20 failures, want 1", n)
	}

	disk.ReadOnly()
	send(20)
	if n := lb.count(line, "file=outbox", "cause=read-only"); n != 1 {
		t.Errorf("%d lines saying the outbox is on a read-only disk, want 1", n)
	}
	disk.Writable()
	send(1)
	if files := msgFiles(t, opts.OutboxDir); len(files) != 0 {
		t.Errorf("files of delivered events left behind: %v", files)
	}
	_, kept := sub.events("siglipd/events")
	for i, ev := range kept {
		if key(ev) != key(testEvent(i)) {
			t.Fatalf("event %d received = %s, want %s (order broken)", i, key(ev), key(testEvent(i)))
		}
	}

	// The broker away and the disk full: kept in memory, written when
	// there is room, delivered by the next run.
	b.Stop()
	testenv.WaitFor(t, 5*time.Second, func() bool { return !m.Status().Connected }, "the sink to notice the broker is gone")
	disk.Fill()
	for range 5 {
		m.Event(testEvent(next), nil)
		next++
	}
	if files := msgFiles(t, opts.OutboxDir); len(files) != 0 || m.Status().OutboxDepth != 5 {
		t.Fatalf("full disk, broker away: files %v, depth %d; want none on disk, 5 in memory", files, m.Status().OutboxDepth)
	}
	disk.Free()
	testenv.WaitFor(t, 40*time.Second, func() bool { return len(msgFiles(t, opts.OutboxDir)) == 5 },
		"the 5 events kept in memory to be written (at a failed connection attempt)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	m.Close(ctx)
	cancel()
	for _, l := range strings.Split(lb.String(), "\n") {
		if strings.Contains(l, line) {
			t.Log(l)
		}
	}
	if n, r := lb.count("level=WARN", line), lb.count(line+": recovered"); n != 3 || r != 3 {
		t.Errorf("%d warnings about the state folder and %d recoveries, want 3 each (full, read-only, full)", n, r)
	}

	if n := lb.count("they are sent after the next start", "events=5"); n != 1 {
		t.Errorf("%d lines saying 5 events wait for the next start, want 1", n)
	}

	b.Start()
	m2 := startSink(t, opts)
	testenv.WaitFor(t, 20*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) == next },
		"the 5 events the last run wrote late, delivered by the next")
	if raw, _ := sub.events("siglipd/events"); len(raw) != next {
		t.Errorf("%d messages for %d events: duplicates", len(raw), next)
	}

	// Stopped while the disk is full and the broker away: the events in
	// memory are lost, and the log says so.
	b.Stop()
	testenv.WaitFor(t, 5*time.Second, func() bool { return !m2.Status().Connected }, "the sink to notice the broker is gone")
	disk.Fill()
	m2.Event(testEvent(next), nil)
	m2.Event(testEvent(next+1), nil)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	m2.Close(ctx)
	cancel()
	if n := lb.count("level=WARN", "the disk could not take; they are lost", "events=2"); n != 1 {
		t.Errorf("%d lines saying 2 events are lost, want 1", n)
	}
}
