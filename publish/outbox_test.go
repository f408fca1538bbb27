package publish

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	event := message{Topic: "siglipd/events", Payload: []byte(`{"v":1}`), QoS: 1}
	entity := message{Topic: "siglipd/driveway/car/event", Payload: []byte(`{"event_type":"start"}`), QoS: 1}
	for _, msgs := range [][]message{
		{event},
		{{Topic: "a/b", Payload: []byte{}, QoS: 2, Retain: true}},
		{{Topic: strings.Repeat("t", 300), Payload: bytes.Repeat([]byte{0xff}, 70000)}},
		{event, entity},
		{entity, {Topic: "a/b", Payload: []byte{}, QoS: 0, Retain: true}, event},
	} {
		got, err := decodeRecord(encodeRecord(msgs...))
		if err != nil || !sameMessages(got, msgs) {
			t.Errorf("round trip of %d messages to %q: got %+v, %v", len(msgs), msgs[0].Topic, got, err)
		}
	}
}

func sameMessages(a, b []message) bool {
	return slices.EqualFunc(a, b, func(x, y message) bool {
		return x.Topic == y.Topic && bytes.Equal(x.Payload, y.Payload) && x.QoS == y.QoS && x.Retain == y.Retain
	})
}

// TestRecordFormat1: an outbox written before an event could have more than
// one message (format 1, "SGQ1") is still read, so an upgrade delivers it.
func TestRecordFormat1(t *testing.T) {
	want := message{Topic: "siglipd/events", Payload: []byte(`{"v":1,"type":"start"}`), QoS: 1, Retain: true}
	// The bytes format 1 wrote: magic, qos, retain, topic length and
	// topic, payload length and payload, CRC-32 of all before.
	v1 := []byte("SGQ1\x01\x01\x00\x0esiglipd/events\x00\x00\x00\x16" + string(want.Payload))
	v1 = binary.BigEndian.AppendUint32(v1, crc32.ChecksumIEEE(v1))
	got, err := decodeRecord(v1)
	if err != nil || !sameMessages(got, []message{want}) {
		t.Errorf("format 1 record: got %+v, %v; want %+v", got, err, want)
	}
}

// TestRecordDamage: every truncation and every flipped byte is detected, so
// a damaged file is set aside instead of publishing garbage; so is an
// event cut after one of its messages.
func TestRecordDamage(t *testing.T) {
	for _, good := range [][]byte{
		encodeRecord(message{Topic: "siglipd/events", Payload: []byte(`{"v":1,"type":"start"}`), QoS: 1}),
		encodeRecord(message{Topic: "siglipd/events", Payload: []byte(`{"v":1,"type":"start"}`), QoS: 1},
			message{Topic: "siglipd/driveway/car/event", Payload: []byte(`{"event_type":"start"}`), QoS: 1}),
	} {
		for n := 0; n < len(good); n++ {
			if _, err := decodeRecord(good[:n]); err == nil {
				t.Errorf("truncated to %d bytes: no error", n)
			}
		}
		for i := range good {
			bad := bytes.Clone(good)
			bad[i] ^= 0x40
			if _, err := decodeRecord(bad); err == nil {
				t.Errorf("byte %d flipped: no error", i)
			}
		}
	}
	// One message of two, with a checksum that matches what is left: the
	// count says one is missing.
	two := encodeRecord(message{Topic: "a", Payload: []byte("1")}, message{Topic: "b", Payload: []byte("2")})
	one := encodeRecord(message{Topic: "a", Payload: []byte("1")})
	cut := append([]byte(nil), two[:len(one)-4]...)
	cut = binary.BigEndian.AppendUint32(cut, crc32.ChecksumIEEE(cut))
	if _, err := decodeRecord(cut); err == nil {
		t.Error("a record of two messages cut after the first, checksum recomputed: no error")
	}
}

func TestOutbox(t *testing.T) {
	dir := t.TempDir()
	o, problems, err := openOutbox(dir, 3)
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	add := func(s string) int {
		t.Helper()
		dropped, err := o.add(message{Topic: "e", Payload: []byte(s), QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		return dropped
	}
	payloads := func(o *outbox) string {
		var s []string
		for _, r := range o.recs {
			s = append(s, string(r.msgs[0].Payload))
		}
		return strings.Join(s, ",")
	}
	add("a")
	add("b")
	add("c")
	// Full: the oldest goes, except the one in flight.
	if r, _ := o.take(); string(r.msgs[0].Payload) != "a" {
		t.Fatalf("take = %q, want a", r.msgs[0].Payload)
	}
	if d := add("d"); d != 1 || payloads(o) != "a,c,d" {
		t.Fatalf("add over the bound with a in flight: dropped %d, left %s; want 1, a,c,d", d, payloads(o))
	}
	o.done(o.recs[0].seq)
	if d := add("e"); d != 0 || payloads(o) != "c,d,e" {
		t.Fatalf("after done: dropped %d, left %s", d, payloads(o))
	}
	if d := add("f"); d != 1 || payloads(o) != "d,e,f" {
		t.Fatalf("add over the bound: dropped %d, left %s", d, payloads(o))
	}

	// A second process cannot use the same folder.
	if _, _, err := openOutbox(dir, 3); err == nil || !strings.Contains(err.Error(), "in use by another siglipd") {
		t.Fatalf("second open: %v, want an in-use error", err)
	}
	o.close()

	// Leftovers of a crash: a half-written temporary file, a damaged message.
	os.WriteFile(filepath.Join(dir, "00000000000000000099.msg.tmp"), []byte("half"), 0o600)
	damaged := filepath.Join(dir, "00000000000000000050.msg")
	os.WriteFile(damaged, []byte("SGQ1 garbage"), 0o600)

	o2, problems, err := openOutbox(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.close()
	if payloads(o2) != "d,e,f" || len(problems) != 1 || !strings.Contains(problems[0].Error(), damaged) {
		t.Fatalf("reopened: %s, problems %v; want d,e,f and the damaged file named", payloads(o2), problems)
	}
	if _, err := os.Stat(damaged + corruptExt); err != nil {
		t.Errorf("damaged file not set aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000099.msg.tmp")); err == nil {
		t.Error("temporary file not removed")
	}
	// New messages sort after the loaded ones, even past a set-aside number.
	dropped, err := o2.add(message{Topic: "e", Payload: []byte("g")})
	if err != nil || dropped != 0 || payloads(o2) != "d,e,f,g" || o2.recs[3].seq <= o2.recs[2].seq {
		t.Fatalf("add after reopen: %s (%v)", payloads(o2), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.msg"))
	if len(files) != 4 {
		t.Errorf("%d message files on disk, want 4: %v", len(files), files)
	}
}

func TestOutboxUnusableFolder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	_, _, err := openOutbox(filepath.Join(file, "outbox"), 10)
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("outbox under a file: %v, want an error naming the path", err)
	}
}
