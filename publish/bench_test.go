package publish

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// BenchmarkOutboxAdd is the cost of queueing one event: its file written
// and fsync'ed in the outbox folder (the test's temporary folder: put
// TMPDIR on the disk you care about). docs/measurements.md has the figures.
func BenchmarkOutboxAdd(b *testing.B) {
	box, _, err := openOutbox(b.TempDir(), b.N+1)
	if err != nil {
		b.Fatal(err)
	}
	defer box.close()
	msg := message{Topic: "siglipd/events", Payload: make([]byte, 400), QoS: 1}
	b.ResetTimer()
	for range b.N {
		if _, err := box.add(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBacklogDrain is the time per event to send a backlog to a
// local mosquitto at QoS 1, one PUBACK at a time, file removal included:
// b.N events are queued while the broker is away, then delivered. With
// discovery, each start and end also has its message to the label's event
// entity: two round trips for those events instead of one.
func BenchmarkBacklogDrain(b *testing.B) {
	for _, bc := range []struct {
		name      string
		discovery bool
	}{
		{"events", false},
		{"with event entities", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			broker := testenv.StartMosquitto(b)
			m, err := NewMQTT(MQTTOptions{Broker: broker.URL(), ClientID: "bench", QoS: 1, OutboxDir: b.TempDir(),
				OutboxMax: b.N + 1, Discovery: bc.discovery, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				m.Event(testEvent(i), nil)
			}
			b.ResetTimer()
			if err := m.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			testenv.WaitFor(b, 10*time.Minute, func() bool { return m.Status().EventsPublished >= uint64(b.N) }, "the backlog to drain")
			b.StopTimer()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m.Close(ctx)
		})
	}
}
