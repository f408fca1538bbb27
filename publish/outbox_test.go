package publish

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, m := range []message{
		{Topic: "siglipd/events", Payload: []byte(`{"v":1}`), QoS: 1},
		{Topic: "a/b", Payload: []byte{}, QoS: 2, Retain: true},
		{Topic: strings.Repeat("t", 300), Payload: bytes.Repeat([]byte{0xff}, 70000)},
	} {
		got, err := decodeRecord(encodeRecord(m))
		if err != nil || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) || got.QoS != m.QoS || got.Retain != m.Retain {
			t.Errorf("round trip of %q: got %+v, %v", m.Topic, got, err)
		}
	}
}

// TestRecordDamage: every truncation and every flipped byte is detected, so
// a damaged file is set aside instead of publishing garbage.
func TestRecordDamage(t *testing.T) {
	good := encodeRecord(message{Topic: "siglipd/events", Payload: []byte(`{"v":1,"type":"start"}`), QoS: 1})
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
			s = append(s, string(r.msg.Payload))
		}
		return strings.Join(s, ",")
	}
	add("a")
	add("b")
	add("c")
	// Full: the oldest goes, except the one in flight.
	if r, _ := o.take(); string(r.msg.Payload) != "a" {
		t.Fatalf("take = %q, want a", r.msg.Payload)
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
