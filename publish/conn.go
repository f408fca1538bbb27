package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/siglipd/siglipd/internal/kit"
)

// session is one MQTT connection. A new paho client is made for every
// connection: paho's own resend store is then always empty, so our outbox is
// the only thing that resends (paho would otherwise resend its in-flight
// messages and we ours, doubling duplicates).
type session struct {
	c    mqtt.Client
	lost chan error // the connection-lost callback's error (buffered 1)
}

// link is the connection's state and counters, for Status. run writes it.
type link struct {
	mu              sync.Mutex
	connected       bool
	since           time.Time // zero while disconnected
	lastError       string
	lastErrorTime   time.Time
	connectFailures uint64
	published       uint64 // messages acknowledged, any topic
}

func (l *link) setConnected(up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connected, l.since = up, time.Time{}
	if up {
		l.since = time.Now()
	}
}

func (l *link) noteError(msg string, connectFailed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastError, l.lastErrorTime = msg, time.Now()
	if connectFailed {
		l.connectFailures++
	}
}

func (l *link) notePublished() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published++
}

// status fills the connection's part of a Status.
func (l *link) status(s *Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.Connected, s.ConnectedSince = l.connected, l.since
	s.LastError, s.LastErrorTime = l.lastError, l.lastErrorTime
	s.ConnectFailures, s.Published = l.connectFailures, l.published
}

// run owns the connection: it connects with backoff, delivers while
// connected, and returns when Close is done with it (or its ctx is
// cancelled). Close waits for it. What it logs about the connection,
// connLog decides: a line per change worth reading, not per attempt or per
// drop.
func (m *MQTT) run(ctx context.Context) {
	defer close(m.done)
	cl := &connLog{log: m.log, broker: m.broker, window: m.flapWindow}
	defer func() { cl.closing(time.Now()) }()
	failures := 0 // attempts failed in a row: the backoff step
	for {
		s, err := m.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := backoff(failures)
			msg := explain(err, &m.opts)
			m.link.noteError(msg, true)
			cl.connectFailed(time.Now(), msg, delay, m.queue.events())
			if m.isClosing() {
				return // Close allows one attempt, the one just made
			}
			m.queue.persist() // while the broker is away, the disk may have come back

			if !m.sleep(ctx, delay) {
				return
			}
			continue
		}
		failures = 0
		var stable *time.Timer // the probation of a reconnection after drops
		var stableC <-chan time.Time
		if cl.connected(time.Now(), m.opts.ClientID, m.queue.events()) {
			stable = time.NewTimer(cl.window)
			stableC = stable.C
		}

		err = m.session(ctx, s, stableC, func() { cl.stable(time.Now()) })
		if stable != nil {
			stable.Stop()
		}
		m.link.setConnected(false)
		if err == nil {
			return // closed cleanly
		}
		s.c.Disconnect(0) // no-op when the connection is already gone
		if ctx.Err() != nil {
			return
		}
		msg := explain(err, &m.opts)
		m.link.noteError(msg, false)
		cl.lost(time.Now(), msg, m.queue.events())
		// Wait a little even now: a broker that accepts and then drops us
		// would otherwise be hammered in a tight loop.
		if !m.isClosing() && !m.sleep(ctx, retryMin) {
			return
		}
	}
}

// backoff is the wait after the n-th failed attempt in a row: 1 s, 2 s, 4 s,
// … up to 30 s. No jitter: one siglipd per broker cannot cause a storm.
func backoff(n int) time.Duration {
	d := retryMin
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// sleep waits d, or until Close (true: go on, for a last attempt) or ctx
// (false: stop).
func (m *MQTT) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.closing:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *MQTT) isClosing() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

// connect makes one connection attempt.
func (m *MQTT) connect(ctx context.Context) (*session, error) {
	tlsConf, err := m.opts.tlsConfig()
	if err != nil {
		return nil, err
	}
	s := &session{lost: make(chan error, 1)}
	o := mqtt.NewClientOptions().
		AddBroker(m.opts.Broker).
		SetClientID(m.opts.ClientID).
		SetUsername(m.opts.Username).
		SetPassword(m.opts.Password).
		SetTLSConfig(tlsConf).
		// Persistent session: the broker keeps our subscription to
		// homeassistant/status while we are away.
		SetCleanSession(false).
		// We reconnect ourselves (run), with a fresh client each time.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		// Pinned, so a refused login is reported as such rather than as
		// paho's fallback to MQTT 3.1 failing differently.
		SetProtocolVersion(4).
		SetConnectTimeout(connectTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(pingTimeout).
		SetWriteTimeout(publishTimeout).
		SetWill(m.t.available(), Offline, 1, true).
		SetDefaultPublishHandler(m.onMessage). // queued messages of our session arrive before Subscribe returns
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		})
	// paho takes a *net.Dialer, not a context; Cancel makes Close's deadline
	// end a dial to an unreachable broker instead of waiting connectTimeout.
	o.SetDialer(&net.Dialer{Timeout: connectTimeout, Cancel: ctx.Done()}) //nolint:staticcheck // see above
	s.c = mqtt.NewClient(o)
	tok := s.c.Connect()
	<-tok.Done() // bounded by connectTimeout
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return s, nil
}

// session delivers until the connection breaks (its error), ctx ends (its
// error) or Close is done (nil, after "offline" and a clean disconnect).
// When stable fires (the connection has held long enough), onStable is
// called.
func (m *MQTT) session(ctx context.Context, s *session, stable <-chan time.Time, onStable func()) error {
	if err := m.send(ctx, s, message{Topic: m.t.available(), Payload: []byte(Online), QoS: 1, Retain: true}); err != nil {
		return err
	}
	if m.opts.Discovery {
		if err := wait(ctx, s, s.c.Subscribe(m.t.haStatus(), 1, m.onMessage), "subscribe to "+m.t.haStatus()); err != nil {
			return err
		}
	}
	m.link.setConnected(true) // once the session is set up: "connected" means events can flow
	m.ha.again()
	m.queue.dropStale() // scores gathered while disconnected

	for {
		if err := m.deliver(ctx, s); err != nil {
			if ctx.Err() != nil { // Close's deadline, not the connection
				m.goodbye(ctx, s)
			}
			return err
		}
		select {
		case <-m.wake:
		case <-stable:
			onStable()
			stable = nil
		case err := <-s.lost:
			return err
		case <-ctx.Done():
			m.goodbye(ctx, s)
			return ctx.Err()
		case <-m.closing:
			// Close queued its last events before closing; deliver once
			// more in case they raced with the wake-up above.
			if err := m.deliver(ctx, s); err != nil {
				return err
			}
			m.goodbye(ctx, s)
			return nil
		}
	}
}

// goodbye publishes "offline" (a clean disconnect does not fire the LWT)
// and disconnects. ctx is the run's: while it lives the goodbye may take
// goodbyeTimeout; once Close's deadline has cancelled it, only a last
// moment (lastWord), so Close overruns its deadline by at most ≈ 0.5 s.
func (m *MQTT) goodbye(ctx context.Context, s *session) {
	var cancel context.CancelFunc
	if ctx.Err() == nil {
		ctx, cancel = context.WithTimeout(ctx, goodbyeTimeout)
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), lastWord)
	}
	defer cancel()
	if err := m.send(ctx, s, message{Topic: m.t.available(), Payload: []byte(Offline), QoS: 1, Retain: true}); err != nil {
		m.log.Warn("mqtt: could not publish offline before disconnecting", "error", explain(err, &m.opts))
	}
	s.c.Disconnect(uint(lastWord / time.Millisecond))
	m.log.Info("mqtt disconnected", "broker", m.broker)
}

// deliver sends everything waiting, in this order: discovery and states
// when an announce is due, then the latest values (states, snapshots,
// scores), then outbox events one at a time, oldest first. It returns nil
// when nothing is left.
func (m *MQTT) deliver(ctx context.Context, s *session) error {
	for {
		if plan, due := m.ha.take(); due {
			for _, msg := range plan {
				if err := m.send(ctx, s, msg); err != nil {
					m.ha.again()
					return err
				}
				m.ha.sent(msg)
			}
			continue
		}
		it, ok := m.queue.next()
		if !ok {
			return nil
		}
		for _, msg := range it.msgs {
			if err := m.send(ctx, s, msg); err != nil {
				m.queue.putBack(it)
				return err
			}
		}
		m.queue.done(it)
		if !it.event {
			m.ha.sent(it.msgs[0])
		}
	}
}

// send publishes one message and waits for the broker's acknowledgement
// (QoS 1, 2) or for it to be written (QoS 0).
func (m *MQTT) send(ctx context.Context, s *session, msg message) error {
	tok := s.c.Publish(msg.Topic, msg.QoS, msg.Retain, msg.Payload)
	if err := wait(ctx, s, tok, "publish to "+msg.Topic); err != nil {
		return err
	}
	m.link.notePublished()
	return nil
}

// wait waits for a paho token, the connection's loss, ctx, or publishTimeout.
func wait(ctx context.Context, s *session, tok mqtt.Token, what string) error {
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case err := <-s.lost:
		return fmt.Errorf("%s: connection lost: %w", what, err)
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s: no acknowledgement within %s", what, publishTimeout)
	}
}

// onMessage handles what we subscribe to: Home Assistant's birth message.
// It must not block (paho calls it in order, on its reader goroutine).
func (m *MQTT) onMessage(_ mqtt.Client, msg mqtt.Message) {
	if msg.Topic() != m.t.haStatus() || string(msg.Payload()) != Online {
		return
	}
	m.log.Info("mqtt: Home Assistant is online; announcing again")
	m.ha.again()
	m.signal()
}

// CheckTLS reads the broker's TLS files as a connection would: the CA file
// must hold a PEM certificate, and the client certificate and key must
// load as a pair. For --check; a running sink reads them at each attempt.
func CheckTLS(caFile, certFile, keyFile string) error {
	o := MQTTOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	_, err := o.tlsConfig()
	return err
}

// tlsConfig builds the TLS settings from the files, at each attempt. nil
// for a plain connection.
func (o *MQTTOptions) tlsConfig() (*tls.Config, error) {
	return kit.TLSFiles{CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile, InsecureSkipVerify: o.InsecureSkipVerify}.Load()
}

// explain turns a connection error into one line a user can act on. It
// never contains the password (URLs are redacted).
func explain(err error, o *MQTTOptions) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		who := "anonymously (no username)"
		if o.Username != "" {
			who = fmt.Sprintf("as user %q", o.Username)
		}
		return fmt.Sprintf("broker refused the login %s: %v (check mqtt.username and mqtt.password)", who, err)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Sprintf("broker rejected client id %q (set mqtt.client_id)", o.ClientID)
	case errors.As(err, &unknownCA):
		ca := "the system's CAs"
		if o.CAFile != "" {
			ca = "the CA in " + o.CAFile
		}
		return fmt.Sprintf("TLS: the broker's certificate is not signed by %s: %v", ca, err)
	case errors.As(err, &hostErr):
		return fmt.Sprintf("TLS: the broker's certificate is not valid for this host name: %v", err)
	case errors.As(err, &certErr):
		return fmt.Sprintf("TLS: the broker's certificate was not accepted: %v", err)
	case errors.Is(err, packets.ErrorNetworkError):
		// paho writes "network Error : <cause>"; the cause is what helps.
		cause := strings.TrimPrefix(err.Error(), packets.ErrorNetworkError.Error()+" : ")
		return "cannot reach the broker: " + kit.RedactURL(cause)
	}
	return kit.RedactURL(err.Error())
}
