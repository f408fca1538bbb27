package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Subscriber records every MQTT message a broker carries (topic "#").
type Subscriber struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

// SubscribeAll connects to broker and records every message until the test ends.
func SubscribeAll(t testing.TB, broker, user, password string) *Subscriber {
	t.Helper()
	s := &Subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetUsername(user).SetPassword(password).
		SetClientID(fmt.Sprintf("test-all-%d", time.Now().UnixNano())).SetAutoReconnect(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe("#", 0, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, m.Topic()+" "+string(m.Payload()))
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

// Count is how many messages arrived so far.
func (s *Subscriber) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Since returns the messages from the n-th on, "topic payload" each.
func (s *Subscriber) Since(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs[min(n, len(s.msgs)):]...)
}

// All returns every message, one "topic payload" per line.
func (s *Subscriber) All() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.msgs, "\n")
}
