package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/siglipd/siglipd/configs"
)

// session is one MQTT connection. A new paho client is made for every
// connection: paho's own resend store is then always empty, so our outbox is
// the only thing that resends (paho would otherwise resend its in-flight
// messages and we ours, doubling duplicates).
type session struct {
	c    mqtt.Client
	lost chan error // the connection-lost callback's error (buffered 1)
}

// run owns the connection: it connects with backoff, delivers while
// connected, and returns when Close is done with it (or its ctx is
// cancelled). Close waits for it.
func (m *MQTT) run(ctx context.Context) {
	defer close(m.done)
	var (
		failures  int
		lastMsg   string    // the last failure, as logged
		lastLog   time.Time // when a failure was last logged
		downSince time.Time // first failure of the current outage
	)
	for {
		s, err := m.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if downSince.IsZero() {
				downSince = time.Now()
			}
			delay := backoff(failures)
			msg := explain(err, &m.opts)
			m.noteError(msg, true)
			// Logged when the reason changes, then as a reminder every
			// remindEvery: not once per attempt.
			if msg != lastMsg || time.Since(lastLog) >= remindEvery {
				m.log.Warn("mqtt cannot connect; retrying with backoff", "broker", m.broker,
					"error", msg, "attempts", failures, "retry_in", delay, "outbox", m.Status().OutboxDepth)
				lastMsg, lastLog = msg, time.Now()
			}
			if m.isClosing() {
				return // Close allows one attempt, the one just made
			}
			if !m.sleep(ctx, delay) {
				return
			}
			continue
		}

		attrs := []any{"broker", m.broker, "client_id", m.opts.ClientID, "outbox", m.Status().OutboxDepth}
		if failures > 0 {
			attrs = append(attrs, "after_attempts", failures, "down_for", time.Since(downSince).Round(time.Second))
		}
		m.log.Info("mqtt connected", attrs...)
		failures, lastMsg, downSince = 0, "", time.Time{}

		err = m.session(ctx, s)
		m.setConnected(false)
		if err == nil {
			return // closed cleanly
		}
		s.c.Disconnect(0) // no-op when the connection is already gone
		if ctx.Err() != nil {
			return
		}
		msg := explain(err, &m.opts)
		m.noteError(msg, false)
		m.log.Warn("mqtt connection lost; reconnecting", "broker", m.broker, "error", msg, "outbox", m.Status().OutboxDepth)
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

func (m *MQTT) setConnected(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.Connected = up
	m.st.ConnectedSince = time.Time{}
	if up {
		m.st.ConnectedSince = time.Now()
	}
}

func (m *MQTT) noteError(msg string, connectFailed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.LastError, m.st.LastErrorTime = msg, time.Now()
	if connectFailed {
		m.st.ConnectFailures++
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
func (m *MQTT) session(ctx context.Context, s *session) error {
	if err := m.send(ctx, s, message{Topic: m.t.available(), Payload: []byte(Online), QoS: 1, Retain: true}); err != nil {
		return err
	}
	if m.opts.Discovery {
		if err := wait(ctx, s, s.c.Subscribe(m.t.haStatus(), 1, m.onMessage), "subscribe to "+m.t.haStatus()); err != nil {
			return err
		}
	}
	m.setConnected(true) // once the session is set up: "connected" means events can flow
	m.mu.Lock()
	// Not before the first Announce: an empty camera list would remove
	// every entity the previous run created (and Home Assistant's
	// customisations of them) until the daemon announced.
	m.needAnnounce = m.announced
	// Scores gathered while disconnected are stale now.
	for _, t := range slices.Clone(m.latestOrder) {
		if !m.latest[t].Retain {
			m.dropLatestLocked(t)
		}
	}
	m.mu.Unlock()

	for {
		if err := m.deliver(ctx, s); err != nil {
			if ctx.Err() != nil { // Close's deadline, not the connection
				m.goodbye(ctx, s)
			}
			return err
		}
		select {
		case <-m.wake:
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
		m.mu.Lock()
		if m.needAnnounce {
			m.needAnnounce = false
			plan := m.announcePlanLocked()
			m.mu.Unlock()
			if err := m.sendAll(ctx, s, plan); err != nil {
				m.mu.Lock()
				m.needAnnounce = true
				m.mu.Unlock()
				return err
			}
			continue
		}
		if len(m.latestOrder) > 0 {
			topic := m.latestOrder[0]
			msg := m.latest[topic]
			m.dropLatestLocked(topic)
			m.mu.Unlock()
			if err := m.sendAll(ctx, s, []message{msg}); err != nil {
				m.mu.Lock()
				if _, newer := m.latest[topic]; !newer { // put it back, first
					m.latest[topic] = msg
					m.latestOrder = slices.Insert(m.latestOrder, 0, topic)
				}
				m.mu.Unlock()
				return err
			}
			continue
		}
		rec, ok := m.box.take()
		m.mu.Unlock()
		if !ok {
			return nil
		}
		err := m.send(ctx, s, rec.msg)
		m.mu.Lock()
		if err != nil {
			m.box.release()
			m.mu.Unlock()
			return err
		}
		m.box.done(rec.seq)
		m.st.EventsPublished++
		if m.outboxFull && m.box.len() < m.opts.OutboxMax {
			m.log.Info("mqtt outbox has room again", "dropped_while_full", m.droppedWhileFull)
			m.outboxFull, m.droppedWhileFull = false, 0
		}
		m.mu.Unlock()
	}
}

// announcePlanLocked lists what an announce publishes: each label's
// discovery config (when enabled) and current state, then an empty retained
// message for every retained topic we published before that belongs to no
// current camera or label (Home Assistant removes an entity whose config is
// emptied).
func (m *MQTT) announcePlanLocked() []message {
	var plan []message
	keep := map[string]bool{}
	for _, c := range m.cams {
		keep[m.t.snapshot(c.Name)] = true // published with events, not here; but not stale
		up := m.t.cameraAvailable(c.Name)
		plan = append(plan, message{Topic: up, Payload: []byte(m.cameraUp[up]), QoS: 1, Retain: true})
		keep[up] = true
		for _, l := range c.Labels {
			if m.opts.Discovery {
				t := m.t.discoveryConfig(c.Name, l.Name)
				plan = append(plan, message{Topic: t, Payload: m.t.discoveryPayload(c, l, m.opts.Version), QoS: m.opts.QoS, Retain: true})
				keep[t] = true
			}
			st := m.t.state(c.Name, l.Name)
			plan = append(plan, message{Topic: st, Payload: []byte(m.states[st]), QoS: m.opts.QoS, Retain: true})
			keep[st] = true
		}
	}
	var stale []string
	for t := range m.owned {
		if !keep[t] {
			stale = append(stale, t)
		}
	}
	slices.Sort(stale)
	for _, t := range stale {
		plan = append(plan, message{Topic: t, Payload: []byte{}, QoS: m.opts.QoS, Retain: true})
	}
	return plan
}

// sendAll sends msgs in order and records which retained topics we now own.
func (m *MQTT) sendAll(ctx context.Context, s *session, msgs []message) error {
	for _, msg := range msgs {
		if err := m.send(ctx, s, msg); err != nil {
			return err
		}
		if !msg.Retain {
			continue
		}
		m.mu.Lock()
		changed := false
		if len(msg.Payload) == 0 && m.owned[msg.Topic] {
			delete(m.owned, msg.Topic)
			changed = true
		} else if len(msg.Payload) > 0 && !m.owned[msg.Topic] {
			m.owned[msg.Topic] = true
			changed = true
		}
		if changed {
			topics := make([]string, 0, len(m.owned))
			for t := range m.owned {
				topics = append(topics, t)
			}
			slices.Sort(topics)
			if err := m.saveJSON(retainedFile, topics, true); err != nil {
				m.log.Warn("mqtt: cannot save the list of retained topics; a removed label may stay in Home Assistant", "error", err)
			}
		}
		m.mu.Unlock()
	}
	return nil
}

// send publishes one message and waits for the broker's acknowledgement
// (QoS 1, 2) or for it to be written (QoS 0).
func (m *MQTT) send(ctx context.Context, s *session, msg message) error {
	tok := s.c.Publish(msg.Topic, msg.QoS, msg.Retain, msg.Payload)
	if err := wait(ctx, s, tok, "publish to "+msg.Topic); err != nil {
		return err
	}
	m.mu.Lock()
	m.st.Published++
	m.mu.Unlock()
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
	m.mu.Lock()
	m.needAnnounce = m.announced
	m.mu.Unlock()
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
	if o.CAFile == "" && o.CertFile == "" && !o.InsecureSkipVerify {
		return nil, nil // system roots, for a TLS scheme; nothing for a plain one
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: CA file %s: %w", o.CAFile, unwrapPath(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: CA file %s: no PEM certificate in it", o.CAFile)
		}
		conf.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: client certificate %s and key %s: %w", o.CertFile, o.KeyFile, unwrapPath(err))
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
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
		return "cannot reach the broker: " + configs.RedactURL(cause)
	}
	return configs.RedactURL(err.Error())
}
