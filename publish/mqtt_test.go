package publish

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

func baseOptions(t testing.TB, broker string) MQTTOptions {
	log, _ := testLogger(t)
	return MQTTOptions{Broker: broker, ClientID: "siglipd-test", TopicPrefix: "siglipd", QoS: 1,
		OutboxDir: filepath.Join(t.TempDir(), "mqtt"), Discovery: true, DiscoveryPrefix: "homeassistant",
		Version: "v0.3.0", Logger: log}
}

// TestAvailability: "online" is retained on connect, and a clean Close
// publishes "offline" (a clean disconnect does not fire the LWT).
func TestAvailability(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	m := startSink(t, baseOptions(t, b.URL()))
	connected(t, m.Status)

	// A subscriber arriving later gets "online" from the broker's retained copy.
	sub := subscribe(t, b.URL(), "watcher", false, "siglipd/available")
	testenv.WaitFor(t, 5*time.Second, func() bool { _, ok := sub.last("siglipd/available"); return ok }, "retained availability")
	if r, _ := sub.last("siglipd/available"); r.Payload != Online || !r.Retained {
		t.Fatalf("availability on connect = %+v, want retained online", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { r, _ := sub.last("siglipd/available"); return r.Payload == Offline },
		"offline after Close")
	// And it stays: a new subscriber reads offline.
	late := subscribe(t, b.URL(), "late", false, "siglipd/available")
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := late.last("siglipd/available"); return ok && r.Payload == Offline && r.Retained },
		"retained offline after Close")
}

// TestLWTOnSIGKILL: a daemon killed with SIGKILL cannot say goodbye; the
// broker publishes its LWT, retained "offline".
func TestLWTOnSIGKILL(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	opts := baseOptions(t, b.URL())
	c := startChild(t, opts)
	connected(t, c.status)
	sub := subscribe(t, b.URL(), "watcher", false, "siglipd/available")
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := sub.last("siglipd/available"); return ok && r.Payload == Online && r.Retained },
		"retained online")

	killed := time.Now()
	c.kill()
	testenv.WaitFor(t, 10*time.Second, func() bool { r, _ := sub.last("siglipd/available"); return r.Payload == Offline },
		"the LWT's offline after SIGKILL")
	r, _ := sub.last("siglipd/available")
	t.Logf("LWT offline delivered %s after SIGKILL", r.At.Sub(killed).Round(time.Millisecond))

	late := subscribe(t, b.URL(), "late", false, "siglipd/available")
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := late.last("siglipd/available"); return ok && r.Payload == Offline && r.Retained },
		"retained offline after SIGKILL")
}

// TestBrokerRestart is the outage acceptance test: the broker is stopped for
// 10 s while 50 events are produced, then restarted; a persistent QoS 1
// subscriber receives all 50, in order, and keeps no duplicate after
// de-duplicating by (id, type, frame_time).
func TestBrokerRestart(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "node-red", true, "siglipd/events")
	m := startSink(t, baseOptions(t, b.URL()))
	connected(t, m.Status)

	m.Event(testEvent(0), nil) // one event while all is well
	testenv.WaitFor(t, 5*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) == 1 }, "the first event")
	// The subscriber can have it before the sink has the broker's
	// acknowledgement; stopped before that, the event would be sent again.
	testenv.WaitFor(t, 5*time.Second, func() bool { return m.Status().OutboxDepth == 0 }, "the first event to be acknowledged")

	b.Stop()
	testenv.WaitFor(t, 5*time.Second, func() bool { return !m.Status().Connected }, "the sink to notice the broker is gone")
	const n = 50
	const outage = 10 * time.Second
	tick := time.NewTicker(outage / n)
	for i := 1; i <= n; i++ {
		<-tick.C
		m.Event(testEvent(i), nil)
	}
	tick.Stop()
	if d := m.Status().OutboxDepth; d != n {
		t.Fatalf("outbox depth after the outage = %d, want %d", d, n)
	}
	restarted := time.Now()
	b.Start()

	testenv.WaitFor(t, 60*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) >= n+1 },
		"all %d events after the broker restart", n+1)
	raw, kept := sub.events("siglipd/events")
	for i, ev := range kept {
		if key(ev) != key(testEvent(i)) {
			t.Fatalf("event %d received = %s, want %s (order broken)", i, key(ev), key(testEvent(i)))
		}
	}
	if len(kept) != n+1 {
		t.Fatalf("kept %d events, want %d", len(kept), n+1)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return m.Status().OutboxDepth == 0 }, "an empty outbox")
	st := m.Status()
	last := sub.on("siglipd/events")
	t.Logf("broker down %s; %d events delivered %s after restart (reconnect backoff included), %d raw messages (%d duplicates), %d failed connection attempts",
		outage, n, last[len(last)-1].At.Sub(restarted).Round(time.Millisecond), len(raw), len(raw)-len(kept), st.ConnectFailures)
	if st.EventsDropped != 0 || st.EventsPublished < uint64(n+1) {
		t.Errorf("status = %+v", st)
	}
}

// TestAtLeastOnce loses the broker's PUBACK of an event on purpose: the
// broker delivered it, the sink never heard so, and sends it again after
// reconnecting. The subscriber sees it twice and keeps it once by
// (id, type, frame_time): the at-least-once contract of docs/03-mqtt-home-assistant.md ("Delivery").
func TestAtLeastOnce(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "node-red", true, "siglipd/events")
	p := startProxy(t, b.Addr())
	m := startSink(t, baseOptions(t, p.URL()))
	connected(t, m.Status)

	start, end := testEvent(0), testEvent(1)
	update := start
	update.Type, update.FrameTime, update.TopScore = rules.TypeUpdate, start.FrameTime.Add(100*time.Millisecond), 0.9
	m.Event(start, nil)
	testenv.WaitFor(t, 5*time.Second, func() bool { raw, _ := sub.events("siglipd/events"); return len(raw) == 1 }, "the start")
	// The start is two messages (events and the event entity); both must be
	// acknowledged before the broker's answers are dropped.
	testenv.WaitFor(t, 5*time.Second, func() bool { return m.Status().OutboxDepth == 0 }, "the start to be acknowledged")

	// An update changes no state topic, so the event is the only message
	// in flight when the broker's answers are lost.
	p.drop.Store(true)
	m.Event(update, nil)
	testenv.WaitFor(t, 5*time.Second, func() bool { raw, _ := sub.events("siglipd/events"); return len(raw) == 2 }, "the broker to deliver the update")
	if d := m.Status().OutboxDepth; d != 1 {
		t.Fatalf("outbox depth %d without the PUBACK, want 1", d)
	}
	p.cut() // the PUBACK is lost with the connection
	p.drop.Store(false)

	testenv.WaitFor(t, 10*time.Second, func() bool { return m.Status().OutboxDepth == 0 }, "the resent update to be acknowledged")
	m.Event(end, nil)
	testenv.WaitFor(t, 5*time.Second, func() bool { raw, _ := sub.events("siglipd/events"); return len(raw) == 4 }, "the end")
	raw, kept := sub.events("siglipd/events")
	var got []string
	for _, ev := range kept {
		got = append(got, key(ev))
	}
	if key(raw[1]) != key(update) || key(raw[2]) != key(update) || !slices.Equal(got, []string{key(start), key(update), key(end)}) {
		t.Errorf("raw %d messages, kept %v; want the update twice, and start, update, end kept", len(raw), got)
	}
	t.Logf("%d messages received, %d kept after de-duplication", len(raw), len(kept))
}

// TestCloseDeadline: a broker that stops answering cannot hold Close past
// its context (plus the short goodbye); what was not acknowledged stays on
// disk for the next run.
func TestCloseDeadline(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	p := startProxy(t, b.Addr())
	opts := baseOptions(t, p.URL())
	m := startSink(t, opts)
	connected(t, m.Status)
	p.drop.Store(true)
	m.Event(testEvent(0), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := m.Close(ctx)
	took := time.Since(start)
	if err == nil || took > time.Second+2*lastWord+300*time.Millisecond {
		t.Errorf("Close = %v after %s; want a deadline error within ≈ %s", err, took, time.Second+2*lastWord)
	}
	t.Logf("Close with a silent broker: %s with a 1s deadline", took.Round(time.Millisecond))
	files, _ := filepath.Glob(filepath.Join(opts.OutboxDir, "*.msg"))
	if len(files) != 1 { // the start; ending it is the rules' job, before Close
		t.Errorf("%d events left on disk, want 1", len(files))
	}
}

// TestOutboxSurvivesSIGKILL: events produced while the broker is away sit in
// the outbox; the daemon is killed with SIGKILL; after a restart of both,
// they are delivered, in order, once each. (The end of the event the killed
// daemon left open is the daemon's business: daemon's journal.)
func TestOutboxSurvivesSIGKILL(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "node-red", true, "siglipd/events")
	b.Stop()

	opts := baseOptions(t, b.URL())
	c := startChild(t, opts)
	const n = 11 // five start/end pairs and a start left open
	c.do("events 0 11")
	if st := c.status(); st.Connected || st.OutboxDepth != n {
		t.Fatalf("before the kill: %+v, want disconnected with %d events in the outbox", st, n)
	}
	files, _ := filepath.Glob(filepath.Join(opts.OutboxDir, "*.msg"))
	if len(files) != n {
		t.Fatalf("%d outbox files on disk, want %d", len(files), n)
	}
	c.kill()

	b.Start()
	restarted := time.Now()
	c2 := startChild(t, opts)
	testenv.WaitFor(t, 30*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) >= n },
		"the %d events of the killed daemon", n)
	if c2.do("close") != "ok" { // flushes: nothing more may come
		t.Fatal("close failed")
	}
	raw, kept := sub.events("siglipd/events")
	for i := range n {
		if key(kept[i]) != key(testEvent(i)) {
			t.Fatalf("event %d = %s, want %s", i, key(kept[i]), key(testEvent(i)))
		}
	}
	if len(kept) != n {
		t.Errorf("kept %d events, want %d: %v", len(kept), n, kept[n:])
	}
	t.Logf("%d events delivered %s after the restart (%d raw, %d duplicates)",
		len(kept), sub.on("siglipd/events")[len(raw)-1].At.Sub(restarted).Round(time.Millisecond), len(raw), len(raw)-len(kept))
}

// TestConnectionProblems: a wrong password, an unreachable broker and bad
// CA files each give one clear log line (not one per attempt), are retried
// with backoff while the sink keeps running and keeps events in its outbox,
// and the kept events go out once the problem is fixed.
func TestConnectionProblems(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t, testenv.WithPassword("siglipd", "right-password"), testenv.WithTLS())
	otherCA, err := testenv.GenerateTLS(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	missing := filepath.Join(t.TempDir(), "nope", "ca.pem")

	tests := []struct {
		name  string
		bad   func(*MQTTOptions)
		want  string // in the log line and LastError
		fixed func(*MQTTOptions)
	}{
		{"wrong password",
			func(o *MQTTOptions) { o.Username, o.Password = "siglipd", "s3cret-wrong" },
			`broker refused the login as user "siglipd"`,
			func(o *MQTTOptions) { o.Password = "right-password" }},
		{"no credentials",
			func(o *MQTTOptions) {},
			"broker refused the login anonymously",
			func(o *MQTTOptions) { o.Username, o.Password = "siglipd", "right-password" }},
		{"unreachable broker",
			func(o *MQTTOptions) { o.Broker = "tcp://127.0.0.1:" + itoa(testenv.FreePort(t)) },
			"cannot reach the broker: dial tcp 127.0.0.1:",
			func(o *MQTTOptions) { o.Broker, o.Username, o.Password = b.URL(), "siglipd", "right-password" }},
		{"missing CA file",
			func(o *MQTTOptions) { o.Broker, o.CAFile = b.TLSURL(), missing },
			"TLS: CA file " + missing + ": open: no such file or directory",
			func(o *MQTTOptions) { o.CAFile, o.Username, o.Password = b.TLS.CAFile, "siglipd", "right-password" }},
		{"CA file without a certificate",
			func(o *MQTTOptions) { o.Broker, o.CAFile = b.TLSURL(), garbage },
			"TLS: CA file " + garbage + ": no PEM certificate in it",
			func(o *MQTTOptions) { o.CAFile, o.Username, o.Password = b.TLS.CAFile, "siglipd", "right-password" }},
		{"CA that did not sign the broker",
			func(o *MQTTOptions) { o.Broker, o.CAFile = b.TLSURL(), otherCA.CAFile },
			"TLS: the broker's certificate is not signed by the CA in " + otherCA.CAFile,
			func(o *MQTTOptions) { o.CAFile, o.Username, o.Password = b.TLS.CAFile, "siglipd", "right-password" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := baseOptions(t, b.URL())
			opts.ClientID = "siglipd-" + itoa(i)
			log, lb := testLogger(t)
			opts.Logger = log
			tt.bad(&opts)
			m, err := NewMQTT(opts)
			if err != nil {
				t.Fatalf("NewMQTT must accept options that fail only at connect time: %v", err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				m.Event(testEvent(i), nil)
			}
			// Retried: the first attempt at once, the second 1 s later.
			testenv.WaitFor(t, 10*time.Second, func() bool { return m.Status().ConnectFailures >= 2 }, "a second attempt")
			m.Event(testEvent(4), nil) // still running, still accepting
			st := m.Status()
			if st.Connected || st.OutboxDepth != 4 || !strings.Contains(st.LastError, tt.want) {
				t.Errorf("status = %+v; want disconnected, 4 events kept, LastError with %q", st, tt.want)
			}
			logged := strings.ReplaceAll(tt.want, `"`, `\"`) // as the text handler quotes it
			if n := lb.count("mqtt cannot connect", logged); n != 1 {
				t.Errorf("%d log lines with %q after %d attempts, want exactly 1:\n%s", n, logged, st.ConnectFailures, lb.String())
			}
			if strings.Contains(lb.String(), "s3cret-wrong") || strings.Contains(lb.String(), "right-password") {
				t.Error("a password appears in the log")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			m.Close(ctx) // the four events stay in the outbox
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close with the broker unusable took %s", d)
			}

			// Fixed: the same outbox delivers what it kept.
			sub := subscribeAuth(t, b, "check-"+itoa(i))
			tt.fixed(&opts)
			m2 := startSink(t, opts)
			want := []string{key(testEvent(0)), key(testEvent(1)), key(testEvent(2)), key(testEvent(4))}
			var got []string
			testenv.WaitFor(t, 15*time.Second, func() bool {
				_, kept := sub.events("siglipd/events")
				got = got[:0]
				for _, ev := range kept {
					if ev.Type == rules.TypeEnd && ev.EndTime.After(start.Add(-time.Second)) {
						got = append(got, "end of "+ev.ID)
					} else {
						got = append(got, key(ev))
					}
				}
				return len(got) >= len(want)
			}, "the kept events once fixed")
			if !slices.Equal(got, want) {
				t.Errorf("delivered\n%v\nwant\n%v", got, want)
			}
			if !m2.Status().Connected {
				t.Error("not connected after the fix")
			}
		})
	}
}

func subscribeAuth(t testing.TB, b *testenv.Mosquitto, id string) *subscriber {
	t.Helper()
	// The password-protected broker needs credentials for the checker too.
	s := &subscriber{t: t}
	o := newSubOptions(b.URL(), id, s)
	o.SetUsername(b.User).SetPassword(b.Password)
	return connectSub(t, s, o, "siglipd/events")
}

// TestTLSClientCertificate: TLS with a client certificate and a custom CA.
func TestTLSClientCertificate(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t, testenv.WithClientCerts())
	sub := subscribe(t, b.URL(), "watcher", false, "siglipd/events")
	opts := baseOptions(t, b.TLSURL())
	opts.CAFile, opts.CertFile, opts.KeyFile = b.TLS.CAFile, b.TLS.ClientCert, b.TLS.ClientKey
	m := startSink(t, opts)
	connected(t, m.Status)
	m.Event(testEvent(0), nil)
	testenv.WaitFor(t, 5*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) == 1 }, "the event over TLS")

	// Without the client certificate the broker refuses the handshake.
	opts2 := baseOptions(t, b.TLSURL())
	opts2.CAFile, opts2.ClientID = b.TLS.CAFile, "no-cert"
	m2 := startSink(t, opts2)
	testenv.WaitFor(t, 10*time.Second, func() bool { return m2.Status().ConnectFailures >= 1 }, "a refused attempt")
	if st := m2.Status(); st.Connected || st.LastError == "" {
		t.Errorf("without a client certificate: %+v", st)
	}
}

// TestDiscovery: Announce publishes a valid Home Assistant config per label
// and a retained OFF state; events switch the state; Home Assistant's
// birth message makes it announce again; a removed label's entity is
// removed (empty retained config) and so is its state, also across a
// restart of the daemon.
func TestDiscovery(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	opts := baseOptions(t, b.URL())
	m := startSink(t, opts)
	cams := []Camera{
		{Name: "driveway", Labels: []Label{{Name: "car", DeviceClass: "occupancy"}, {Name: "person", DeviceClass: "occupancy"}}},
		{Name: "garage", Labels: []Label{{Name: "Garage door open!", DeviceClass: "garage_door"}}},
	}
	m.Announce(cams)
	connected(t, m.Status)

	ha := subscribe(t, b.URL(), "home-assistant", false, "homeassistant/#", "siglipd/#")
	configTopics := []string{
		"homeassistant/binary_sensor/siglipd/driveway__car/config",
		"homeassistant/binary_sensor/siglipd/driveway__person/config",
		"homeassistant/binary_sensor/siglipd/garage__garage_door_open/config",
	}
	stateTopics := []string{"siglipd/driveway/car/state", "siglipd/driveway/person/state", "siglipd/garage/garage_door_open/state"}
	retainedIs := func(topic, payload string) func() bool {
		return func() bool { r, ok := ha.last(topic); return ok && r.Payload == payload }
	}
	tp := newTopics("siglipd", "homeassistant")
	ids := map[string]bool{}
	for i := range configTopics {
		testenv.WaitFor(t, 5*time.Second, retainedIs(stateTopics[i], StateOff), "initial OFF on %s", stateTopics[i])
	}
	// Announced; what a Home Assistant starting now reads is retained.
	reader := subscribe(t, b.URL(), "reader", false, "homeassistant/#", "siglipd/#")
	for i, ct := range configTopics {
		testenv.WaitFor(t, 5*time.Second, func() bool {
			_, ok1 := reader.last(ct)
			_, ok2 := reader.last(stateTopics[i])
			return ok1 && ok2
		}, "retained config and state of %s", ct)
		r, _ := reader.last(ct)
		if st, _ := reader.last(stateTopics[i]); !r.Retained || !st.Retained || st.Payload != StateOff {
			t.Errorf("%s: config retained %v, state %+v; want both retained, OFF", ct, r.Retained, st)
		}
		if err := validateHAConfig(ct, []byte(r.Payload), tp); err != nil {
			t.Error(err)
		}
		var c haConfig
		json.Unmarshal([]byte(r.Payload), &c)
		if c.StateTopic != stateTopics[i] || ids[c.UniqueID] {
			t.Errorf("%s: state_topic %q (want %q), unique_id %q (duplicate: %v)", ct, c.StateTopic, stateTopics[i], c.UniqueID, ids[c.UniqueID])
		}
		ids[c.UniqueID] = true
	}
	if r, _ := ha.last(configTopics[0]); !strings.Contains(r.Payload, `"identifiers":["siglipd_driveway"]`) {
		t.Errorf("driveway's device: %s", r.Payload)
	}

	// An event switches its state, in the order of events.
	start := testEvent(0)
	m.Event(start, nil)
	testenv.WaitFor(t, 5*time.Second, retainedIs("siglipd/driveway/car/state", StateOn), "ON after start")
	m.Event(testEvent(1), nil)
	testenv.WaitFor(t, 5*time.Second, retainedIs("siglipd/driveway/car/state", StateOff), "OFF after end")

	// Home Assistant restarts: it says online, we announce again.
	before := len(ha.on(configTopics[0]))
	ha.c.Publish("homeassistant/status", 1, false, "online").Wait()
	testenv.WaitFor(t, 5*time.Second, func() bool { return len(ha.on(configTopics[0])) > before }, "re-announce after homeassistant/status online")

	// person is removed from the config: its entity and state go.
	m.Announce([]Camera{{Name: "driveway", Labels: cams[0].Labels[:1]}, cams[1]})
	testenv.WaitFor(t, 5*time.Second, retainedIs(configTopics[1], ""), "an empty config for the removed label")
	testenv.WaitFor(t, 5*time.Second, retainedIs(stateTopics[1], ""), "an empty state for the removed label")

	// The garage camera is removed while the daemon is stopped: the next run
	// still knows it published it, and removes it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Close(ctx)
	m2 := startSink(t, opts)
	connected(t, m2.Status) // connected before its first Announce: must not touch the entities yet
	m2.Announce([]Camera{{Name: "driveway", Labels: cams[0].Labels[:1]}})
	testenv.WaitFor(t, 5*time.Second, retainedIs(configTopics[2], ""), "the removed camera's config emptied by the next run")

	// What a newly started Home Assistant reads now: exactly the car.
	fresh := subscribe(t, b.URL(), "fresh-ha", false, "homeassistant/#")
	testenv.WaitFor(t, 5*time.Second, func() bool { _, ok := fresh.last(configTopics[0]); return ok }, "car's retained config")
	for _, gone := range configTopics[1:] {
		if _, ok := fresh.last(gone); ok {
			t.Errorf("%s still retained", gone)
		}
	}
	// The car entity was never removed on the way (that would lose what the
	// user customised on it in Home Assistant).
	for _, r := range ha.on(configTopics[0]) {
		if r.Payload == "" {
			t.Error("the car's config was emptied at some point")
		}
	}
}

// TestScoresAndSnapshots: scores are rate limited per camera by frame time;
// a snapshot is retained, published before its start event, and dropped
// (counted) when over the size limit.
func TestScoresAndSnapshots(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	opts := baseOptions(t, b.URL())
	opts.ScoresEnabled, opts.ScoresInterval = true, time.Second
	opts.SnapshotsEnabled, opts.SnapshotMaxBytes = true, 1024
	m := startSink(t, opts)
	connected(t, m.Status)
	sub := subscribe(t, b.URL(), "watcher", false, "siglipd/#")

	// 10 frames per second of frame time for 2.5 s: only the frames at 0 s,
	// 1 s and 2 s pass the 1 s rate limit. Values waiting to go out are
	// replaced by newer ones (a score is a latest value), so the subscriber
	// sees some of 0.00, 0.10, 0.20 and always the last, 0.20.
	t0 := time.Date(2024, 11, 27, 16, 0, 0, 0, time.UTC)
	for i := range 25 {
		m.Scores("driveway", t0.Add(time.Duration(i)*100*time.Millisecond), map[string]float64{"car": float64(i) / 100, "Garage door": 0.5})
	}
	// Within the interval of the 2 s frame: not published. The event after
	// it is the marker: scores queued before an event go out before it.
	m.Scores("driveway", t0.Add(2550*time.Millisecond), map[string]float64{"car": 0.99})
	m.Event(testEvent(1), nil)
	testenv.WaitFor(t, 5*time.Second, func() bool { return len(sub.on("siglipd/events")) == 1 }, "the marker event")
	var got []string
	for _, r := range sub.on("siglipd/driveway/car/score") {
		got = append(got, r.Payload)
		if !slices.Contains([]string{"0.0000", "0.1000", "0.2000"}, r.Payload) || r.Retained {
			t.Errorf("car score %+v: not one of the rate limited frames' or retained", r)
		}
	}
	if len(got) == 0 || got[len(got)-1] != "0.2000" {
		t.Errorf("car scores = %v, want the last 0.2000", got)
	}
	if r, ok := sub.last("siglipd/driveway/garage_door/score"); !ok || r.Payload != "0.5000" {
		t.Errorf("slugged label score = %+v", r)
	}

	jpeg := append([]byte{0xff, 0xd8}, make([]byte, 500)...)
	m.Event(testEvent(2), jpeg)
	testenv.WaitFor(t, 5*time.Second, func() bool { return len(sub.on("siglipd/events")) == 2 }, "the start event")
	snap, ok := sub.last("siglipd/driveway/snapshot")
	if !ok || snap.Payload != string(jpeg) {
		t.Fatalf("snapshot = %d bytes, want the %d bytes given", len(snap.Payload), len(jpeg))
	}
	if ev := sub.on("siglipd/events")[1]; snap.At.After(ev.At) {
		t.Error("snapshot arrived after its start event")
	}
	late := subscribe(t, b.URL(), "late", false, "siglipd/driveway/snapshot")
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := late.last("siglipd/driveway/snapshot"); return ok && r.Retained },
		"the retained snapshot")
	m.Event(testEvent(3), nil)
	m.Event(testEvent(4), make([]byte, 2000)) // over 1 KiB
	testenv.WaitFor(t, 5*time.Second, func() bool { return len(sub.on("siglipd/events")) == 4 }, "four events")
	if n := len(sub.on("siglipd/driveway/snapshot")); n != 1 || m.Status().SnapshotsSkipped != 1 {
		t.Errorf("%d snapshots published, %d skipped; want 1 and 1", n, m.Status().SnapshotsSkipped)
	}
}

// TestOutboxFull: a bounded outbox drops the oldest, counts and logs once,
// and delivers the rest in order.
func TestOutboxFull(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	sub := subscribe(t, b.URL(), "node-red", true, "siglipd/events")
	b.Stop()
	opts := baseOptions(t, b.URL())
	log, lb := testLogger(t)
	opts.Logger, opts.OutboxMax = log, 5
	m := startSink(t, opts)
	for i := range 8 {
		m.Event(testEvent(i), nil)
	}
	if st := m.Status(); st.OutboxDepth != 5 || st.EventsDropped != 3 {
		t.Fatalf("status = %+v, want 5 kept and 3 dropped", st)
	}
	if n := lb.count("mqtt outbox full"); n != 1 {
		t.Errorf("%d 'outbox full' log lines, want 1", n)
	}
	b.Start()
	testenv.WaitFor(t, 20*time.Second, func() bool { _, kept := sub.events("siglipd/events"); return len(kept) >= 5 }, "the 5 kept events")
	_, kept := sub.events("siglipd/events")
	for i, ev := range kept {
		if key(ev) != key(testEvent(3+i)) {
			t.Errorf("event %d = %s, want %s", i, key(ev), key(testEvent(3+i)))
		}
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return lb.count("mqtt outbox has room again", "dropped_while_full=3") == 1 }, "the room-again line")
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if backoff(1000) != retryMax {
		t.Error("backoff does not stay at its maximum")
	}
}

func TestNewMQTTRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts MQTTOptions
		want string
	}{
		{"no broker", MQTTOptions{OutboxDir: dir}, "broker URL is empty"},
		{"bad scheme", MQTTOptions{Broker: "http://u:pw@host", OutboxDir: dir}, "http://u:***@host: scheme must be"},
		{"no host", MQTTOptions{Broker: "tcp://:1883", OutboxDir: dir}, "has no host"},
		{"CA on a plain URL", MQTTOptions{Broker: "tcp://h:1883", CAFile: "ca.pem", OutboxDir: dir}, "is not TLS"},
		{"cert without key", MQTTOptions{Broker: "ssl://h:8883", CertFile: "c.pem", OutboxDir: dir}, "together"},
		{"QoS 3", MQTTOptions{Broker: "tcp://h:1883", QoS: 3, OutboxDir: dir}, "QoS must be"},
		{"no outbox", MQTTOptions{Broker: "tcp://h:1883"}, "outbox folder is required"},
		{"wildcard prefix", MQTTOptions{Broker: "tcp://h:1883", TopicPrefix: "a/+", OutboxDir: dir}, "must not contain"},
	}
	for _, tt := range tests {
		_, err := NewMQTT(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: password in error %v", tt.name, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestProbabilitySensor: with scores and discovery on, each label also has
// a Home Assistant sensor entity on its score topic (state_class
// measurement, in the camera's device, with the same availability), and a
// label removed by a later announce loses it; without scores there is none.
func TestProbabilitySensor(t *testing.T) {
	testenv.Integration(t)
	b := testenv.StartMosquitto(t)
	opts := baseOptions(t, b.URL())
	opts.Discovery, opts.DiscoveryPrefix = true, "homeassistant"
	opts.ScoresEnabled, opts.ScoresInterval = true, 2*time.Second
	m := startSink(t, opts)
	m.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}, {Name: "person"}}}})
	connected(t, m.Status)
	sub := subscribe(t, b.URL(), "ha", false, "homeassistant/#")
	const carTopic = "homeassistant/sensor/siglipd/driveway__car_probability/config"
	testenv.WaitFor(t, 5*time.Second, func() bool { _, ok := sub.last(carTopic); return ok }, "the car probability sensor's config")
	r, _ := sub.last(carTopic)
	var c map[string]any
	if err := json.Unmarshal([]byte(r.Payload), &c); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"name": "car probability", "unique_id": "siglipd_driveway__car_probability", "state_topic": "siglipd/driveway/car/score",
		"state_class": "measurement", "suggested_display_precision": 3.0, "expire_after": 60.0, "availability_mode": "all",
	} {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	if _, ok := c["payload_on"]; ok {
		t.Errorf("config %s: payload_on present", r.Payload)
	}
	// Retained: a subscriber that comes later gets it. (The first one may
	// have subscribed before the sink published it, and then got it live,
	// without the retain flag: a race that -race made visible.)
	late := subscribe(t, b.URL(), "ha-late", false, carTopic)
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := late.last(carTopic); return ok && r.Retained && r.Payload != "" },
		"the car probability sensor's config, retained, for a later subscriber")
	if dev := c["device"].(map[string]any); dev["identifiers"].([]any)[0] != "siglipd_driveway" {
		t.Errorf("device %v: not the camera's", dev)
	}

	m.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "person"}}}})
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := sub.last(carTopic); return ok && r.Payload == "" },
		"the removed label's sensor config to be emptied")

	// Without scores: no sensor.
	b2 := testenv.StartMosquitto(t)
	opts2 := baseOptions(t, b2.URL())
	opts2.Discovery, opts2.DiscoveryPrefix = true, "homeassistant"
	m2 := startSink(t, opts2)
	m2.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}}}})
	connected(t, m2.Status)
	sub2 := subscribe(t, b2.URL(), "ha2", false, "homeassistant/#")
	testenv.WaitFor(t, 5*time.Second, func() bool {
		_, ok := sub2.last("homeassistant/binary_sensor/siglipd/driveway__car/config")
		return ok
	}, "the binary_sensor config")
	if r, ok := sub2.last(carTopic); ok {
		t.Errorf("a probability sensor without scores: %+v", r)
	}
}

// retainedNow is what a subscriber arriving now gets retained on topics: it
// subscribes to them, then to marker (a topic that is retained), and waits
// for the marker. Subscriptions are answered in order, so whatever the
// broker holds on topics has arrived by then; what has not is not held.
func retainedNow(t *testing.T, broker, marker string, topics ...string) map[string]string {
	t.Helper()
	s := subscribe(t, broker, "look-"+strconv.FormatInt(time.Now().UnixNano(), 36), false, append(topics, marker)...)
	testenv.WaitFor(t, 5*time.Second, func() bool { _, ok := s.last(marker); return ok }, "the retained %s", marker)
	held := map[string]string{}
	for _, topic := range topics {
		if r, ok := s.last(topic); ok && r.Retained {
			held[topic] = r.Payload
		}
	}
	return held
}

// haEventOf is an event as its label's event entity receives it.
func haEventOf(ev rules.Event) string {
	b, _ := json.Marshal(haEvent{EventType: ev.Type, ID: ev.ID, Camera: ev.Camera, Label: ev.Label, Probability: ev.Score, FrameTime: ev.FrameTime})
	return string(b)
}

// TestEventEntity: with discovery, each label has a Home Assistant event
// entity in its camera's device; each start and end (not an update)
// reaches the label's event topic as {"event_type": ...} JSON with the
// probability, camera, label, id and frame time, not retained; a label
// removed by a later announce loses its entity. The messages are part of
// their events: kept in the outbox across a SIGKILL while the broker is
// away, and delivered after it, in order. Without discovery there is
// neither the entity nor the messages.
func TestEventEntity(t *testing.T) {
	testenv.Integration(t)
	const (
		carConfig    = "homeassistant/event/siglipd/driveway__car_event/config"
		personConfig = "homeassistant/event/siglipd/driveway__person_event/config"
		carEvents    = "siglipd/driveway/car/event"
	)
	b := testenv.StartMosquitto(t)
	m := startSink(t, baseOptions(t, b.URL()))
	m.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}, {Name: "person", DeviceClass: "occupancy"}}}})
	connected(t, m.Status)
	ha := subscribe(t, b.URL(), "ha", false, "homeassistant/#", "siglipd/#")

	tp := newTopics("siglipd", "homeassistant")
	// person's state is the last of the announce.
	testenv.WaitFor(t, 5*time.Second, func() bool { _, ok := ha.last("siglipd/driveway/person/state"); return ok }, "the announce")
	held := retainedNow(t, b.URL(), "siglipd/driveway/car/state", carConfig, personConfig)
	for _, topic := range []string{carConfig, personConfig} {
		if err := validateHAConfig(topic, []byte(held[topic]), tp); err != nil {
			t.Errorf("retained %s: %v", topic, err)
		}
	}
	var c haConfig
	json.Unmarshal([]byte(held[carConfig]), &c)
	if c.Name != "car event" || c.UniqueID != "siglipd_driveway__car_event" || c.StateTopic != carEvents ||
		!slices.Equal(c.EventTypes, []string{"start", "end"}) || c.Device.Identifiers[0] != "siglipd_driveway" {
		t.Errorf("car's event entity: %s", held[carConfig])
	}

	start, end := testEvent(0), testEvent(1)
	update := start
	update.Type, update.FrameTime, update.Score, update.TopScore = rules.TypeUpdate, start.FrameTime.Add(100*time.Millisecond), 0.9, 0.9
	m.Event(start, nil)
	m.Event(update, nil)
	m.Event(end, nil)
	m.Event(testEvent(2), nil) // the marker: what the end brought has arrived before it
	// The event entity's message goes out after the events message is
	// acknowledged, so the marker's may still be on its way.
	testenv.WaitFor(t, 5*time.Second, func() bool {
		raw, _ := ha.events("siglipd/events")
		return len(raw) == 4 && len(ha.on(carEvents)) >= 3
	}, "four events, and three on the event entity")
	var got []string
	for _, r := range ha.on(carEvents) {
		got = append(got, r.Payload)
		if r.Retained {
			t.Errorf("retained on %s: %s", carEvents, r.Payload)
		}
	}
	if want := []string{haEventOf(start), haEventOf(end), haEventOf(testEvent(2))}; !slices.Equal(got, want) {
		t.Errorf("on %s:\n%v\nwant the start, the end (no update) and the marker's start:\n%v", carEvents, got, want)
	}
	if !strings.Contains(got[0], `"event_type":"start","id":"1732723200.000000-driveway-car","camera":"driveway","label":"car","probability":0.8,`) {
		t.Errorf("start on the event entity: %s", got[0])
	}
	if held := retainedNow(t, b.URL(), "siglipd/driveway/car/state", carEvents); len(held) > 0 {
		t.Errorf("retained on the event topic: %v (Home Assistant ignores it, and would see it at every subscription)", held)
	}

	// person is removed: its event entity goes, car's stays.
	m.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}}}})
	testenv.WaitFor(t, 5*time.Second, func() bool { r, ok := ha.last(personConfig); return ok && r.Payload == "" }, "person's event config emptied")
	if held := retainedNow(t, b.URL(), "siglipd/driveway/car/state", carConfig, personConfig); held[carConfig] == "" || len(held) != 1 {
		t.Errorf("after removing person, retained event configs: %v; want car's only", slices.Sorted(maps.Keys(held)))
	}

	// Never lost: made while the broker is away, kept across a SIGKILL,
	// delivered in order by the next run.
	persistent := subscribe(t, b.URL(), "ha-persistent", true, carEvents)
	b.Stop()
	opts := baseOptions(t, b.URL())
	opts.ClientID = "siglipd-child"
	c1 := startChild(t, opts)
	c1.do("events 4 8")
	if st := c1.status(); st.OutboxDepth != 4 {
		t.Fatalf("outbox depth %d with the broker away, want 4: one record per event", st.OutboxDepth)
	}
	c1.kill()
	b.Start()
	c2 := startChild(t, opts)
	var kept []string
	testenv.WaitFor(t, 30*time.Second, func() bool {
		kept = kept[:0]
		seen := map[string]bool{}
		for _, r := range persistent.on(carEvents) {
			if !seen[r.Payload] {
				seen[r.Payload] = true
				kept = append(kept, r.Payload)
			}
		}
		return len(kept) >= 4
	}, "the event entity's messages of the killed run")
	c2.do("close")
	if want := []string{haEventOf(testEvent(4)), haEventOf(testEvent(5)), haEventOf(testEvent(6)), haEventOf(testEvent(7))}; !slices.Equal(kept, want) {
		t.Errorf("after the SIGKILL, the event entity got\n%v\nwant\n%v", kept, want)
	}

	// Without discovery: no entity, no messages on its topic.
	b2 := testenv.StartMosquitto(t)
	opts2 := baseOptions(t, b2.URL())
	opts2.Discovery = false
	m2 := startSink(t, opts2)
	m2.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}}}})
	connected(t, m2.Status)
	sub2 := subscribe(t, b2.URL(), "watcher", false, "homeassistant/#", "siglipd/#")
	for i := range 3 {
		m2.Event(testEvent(i), nil)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { raw, _ := sub2.events("siglipd/events"); return len(raw) == 3 }, "three events")
	if n, held := len(sub2.on(carEvents)), retainedNow(t, b2.URL(), "siglipd/driveway/car/state", carConfig); n > 0 || len(held) > 0 {
		t.Errorf("without discovery: %d messages on %s, retained config %v", n, carEvents, held)
	}
}

// TestImageEntity: with discovery and snapshots, each camera has a Home
// Assistant image entity on its retained snapshot, in its device, and the
// snapshot is there before the start that a notification would attach it
// to; turning snapshots off (a restart with the same state folder) removes
// the entity and the picture; without discovery there is the snapshot but
// no entity.
func TestImageEntity(t *testing.T) {
	testenv.Integration(t)
	const (
		imageConfig = "homeassistant/image/siglipd/driveway_snapshot/config"
		snapshot    = "siglipd/driveway/snapshot"
		carEvents   = "siglipd/driveway/car/event"
		marker      = "siglipd/driveway/car/state" // retained in every run
	)
	b := testenv.StartMosquitto(t)
	ha := subscribe(t, b.URL(), "ha", true, "homeassistant/#", "siglipd/#")
	outbox := filepath.Join(t.TempDir(), "mqtt") // one state folder for every run: the retained topics it published
	tp := newTopics("siglipd", "homeassistant")
	jpeg := append([]byte{0xff, 0xd8}, make([]byte, 300)...)

	for i, run := range []struct {
		name                 string
		discovery, snapshots bool
		image, picture       bool // retained afterwards: the image entity's config, the snapshot
	}{
		{"discovery and snapshots", true, true, true, true},
		{"snapshots turned off", true, false, false, false},
		{"snapshots without discovery", false, true, false, true},
	} {
		t.Run(run.name, func(t *testing.T) {
			opts := baseOptions(t, b.URL())
			opts.OutboxDir, opts.Discovery, opts.SnapshotsEnabled = outbox, run.discovery, run.snapshots
			m := startSink(t, opts)
			m.Announce([]Camera{{Name: "driveway", Labels: []Label{{Name: "car"}}}})
			connected(t, m.Status)
			// An event goes out after the announce (and its removals) is
			// delivered: once the subscriber has it, so has the broker the rest.
			start := testEvent(2 * i)
			before := ha.mark()
			m.Event(start, jpeg)
			testenv.WaitFor(t, 5*time.Second, func() bool {
				_, kept := ha.events("siglipd/events")
				return slices.ContainsFunc(kept, func(ev rules.Event) bool { return key(ev) == key(start) })
			}, "the start")

			held := retainedNow(t, b.URL(), marker, imageConfig, snapshot)
			if _, ok := held[imageConfig]; ok != run.image {
				t.Errorf("image entity's config retained: %v, want %v", ok, run.image)
			}
			if p, ok := held[snapshot]; ok != run.picture || ok && p != string(jpeg) {
				t.Errorf("snapshot retained: %v (%d bytes), want %v", ok, len(p), run.picture)
			}
			if run.image {
				if err := validateHAConfig(imageConfig, []byte(held[imageConfig]), tp); err != nil {
					t.Error(err)
				}
				var c haConfig
				json.Unmarshal([]byte(held[imageConfig]), &c)
				if c.Name != "snapshot" || c.UniqueID != "siglipd_driveway_snapshot" || c.ImageTopic != snapshot || c.ContentType != "image/jpeg" ||
					c.Device.Identifiers[0] != "siglipd_driveway" || c.StateTopic != "" {
					t.Errorf("image entity: %s", held[imageConfig])
				}
				// The picture is there when the event entity fires.
				rx := ha.since(before)
				pic := slices.IndexFunc(rx, func(r received) bool { return r.Topic == snapshot })
				fired := slices.IndexFunc(rx, func(r received) bool { return r.Topic == carEvents })
				if pic < 0 || fired < 0 || pic > fired {
					t.Errorf("snapshot at %d, the event entity's start at %d of what arrived: want the snapshot first", pic, fired)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m.Close(ctx) // the next run opens the same outbox
		})
	}
}
