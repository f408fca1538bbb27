package testenv

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LinkMode is what a Link does with connections to its port.
type LinkMode int

// The ways a network path to a server can behave, as a client sees them.
const (
	// LinkUp forwards every connection to the target.
	LinkUp LinkMode = iota
	// LinkRefused has nothing listening: a connection is refused at once
	// (a server whose process died, a camera rebooting).
	LinkRefused
	// LinkBlackhole drops connection attempts: a dial hangs until its
	// timeout, as with a host that is off or a route that leads nowhere.
	LinkBlackhole
	// LinkSilent accepts connections and never answers (a hung server, a
	// half-dead camera whose TCP stack still runs).
	LinkSilent
)

func (m LinkMode) String() string {
	switch m {
	case LinkUp:
		return "up"
	case LinkRefused:
		return "refused"
	case LinkBlackhole:
		return "blackhole"
	case LinkSilent:
		return "silent"
	}
	return "LinkMode(" + strconv.Itoa(int(m)) + ")"
}

// Link is a TCP port on 127.0.0.1 in front of a target server, whose
// behaviour a test switches (Set): the network between a client and its
// server, failing on cue. Leaving LinkUp drops every connection it carries
// (both ends see it closed), as a Wi-Fi link that goes away does to the
// connections over it once they notice. It is closed in t.Cleanup.
//
// LinkBlackhole needs no privileges: the port gets a listening socket with
// a backlog of 0 whose one queue slot is taken by a connection of the
// Link's own, so the kernel drops every further SYN (the accept queue is
// full), and a client's connect is retransmitted until it times out.
type Link struct {
	t      testing.TB
	target string
	port   int

	mu    sync.Mutex
	mode  LinkMode
	ln    net.Listener // LinkUp, LinkSilent
	hole  int          // LinkBlackhole: the listening socket's fd (-1: none)
	fill  net.Conn     // LinkBlackhole: the connection that fills its queue
	conns map[net.Conn]struct{}
	cuts  []time.Time // when connections were dropped
	wg    sync.WaitGroup
}

// StartLink opens a Link to target (host:port) on a free port, in mode.
func StartLink(t testing.TB, target string, mode LinkMode) *Link {
	t.Helper()
	l := &Link{t: t, target: target, port: FreePort(t), mode: LinkRefused, hole: -1, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		l.mu.Lock()
		l.closeLocked()
		l.mu.Unlock()
		l.wg.Wait()
	})
	l.Set(mode)
	return l
}

// Addr is 127.0.0.1:PORT, what clients dial.
func (l *Link) Addr() string { return "127.0.0.1:" + strconv.Itoa(l.port) }

// Port is the Link's port.
func (l *Link) Port() int { return l.port }

// Mode is the current mode.
func (l *Link) Mode() LinkMode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// Cuts returns when the Link dropped the connections it carried (each Set
// away from LinkUp or LinkSilent, and each Cut, that had any).
func (l *Link) Cuts() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.cuts...)
}

// Set switches the mode; it returns once the new one is in place. Every
// connection the Link carried is dropped, unless the mode stays the same.
// It may be called from any goroutine.
func (l *Link) Set(mode LinkMode) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if mode == l.mode && (l.ln != nil || l.hole >= 0) {
		return
	}
	l.closeLocked()
	var err error
	switch mode {
	case LinkUp, LinkSilent:
		err = l.listenLocked(mode)
	case LinkBlackhole:
		err = l.blackholeLocked()
	case LinkRefused:
	default:
		err = fmt.Errorf("unknown mode %v", mode)
	}
	if err != nil {
		// Errorf, not Fatalf: Set may run on a goroutine of the test's
		// (a flapping link). The Link then refuses connections.
		l.t.Errorf("link %s: %v: %v", l.Addr(), mode, err)
		l.closeLocked()
		l.mode = LinkRefused
		return
	}
	l.mode = mode
}

// Cut drops every connection the Link carries now, keeping its mode: new
// connections are handled as before.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cutLocked()
}

func (l *Link) cutLocked() {
	if len(l.conns) == 0 {
		return
	}
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
	l.cuts = append(l.cuts, time.Now())
}

// closeLocked stops listening and drops every connection.
func (l *Link) closeLocked() {
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	if l.hole >= 0 {
		syscall.Close(l.hole)
		l.hole = -1
	}
	if l.fill != nil {
		l.fill.Close()
		l.fill = nil
	}
	l.cutLocked()
}

func (l *Link) listenLocked(mode LinkMode) error {
	ln, err := net.Listen("tcp", l.Addr()) // Go sets SO_REUSEADDR: the port's TIME_WAITs do not block it
	if err != nil {
		return err
	}
	l.ln = ln
	l.wg.Add(1)
	go l.accept(ln, mode) // owned by the Link: ends when ln is closed; cleanup waits
	return nil
}

func (l *Link) accept(ln net.Listener, mode LinkMode) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		var up net.Conn
		if mode == LinkUp {
			up, err = net.DialTimeout("tcp", l.target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
		}
		l.mu.Lock()
		if l.ln != ln { // switched meanwhile
			l.mu.Unlock()
			c.Close()
			if up != nil {
				up.Close()
			}
			return
		}
		l.conns[c] = struct{}{}
		if up != nil {
			l.conns[up] = struct{}{}
		}
		l.mu.Unlock()
		if up == nil { // silent: read and discard until dropped
			l.wg.Add(1)
			go func() { defer l.wg.Done(); io.Copy(io.Discard, c); c.Close() }()
			continue
		}
		l.wg.Add(2)
		go func() { defer l.wg.Done(); io.Copy(up, c); up.Close(); c.Close() }()
		go func() { defer l.wg.Done(); io.Copy(c, up); c.Close(); up.Close() }()
	}
}

// blackholeLocked listens with a backlog of 0 and fills the accept queue's
// one slot, so that the kernel drops every further SYN.
func (l *Link) blackholeLocked() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: l.port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		return err
	}
	fill, err := net.DialTimeout("tcp", l.Addr(), time.Second)
	if err != nil {
		syscall.Close(fd)
		return fmt.Errorf("filling the accept queue: %w", err)
	}
	l.hole, l.fill = fd, fill
	// The queue is full now: check that a connection attempt goes unanswered.
	probe, err := net.DialTimeout("tcp", l.Addr(), 200*time.Millisecond)
	if err == nil {
		probe.Close()
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		return fmt.Errorf("a connection attempt did not time out (%v): the kernel did not drop it", err)
	}
	return nil
}
