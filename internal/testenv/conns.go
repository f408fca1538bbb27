package testenv

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ConnWatch counts, from the client side, the TCP connections this network
// namespace holds established to one server port: how many sessions a
// server sees from us, without relying on when the server notices a close.
//
// /proc/net/tcp is not an atomic snapshot: when one connection closes and
// the next opens while it is being read, both can be listed, although they
// never coexisted. So a count is only believed when two samples in a row
// (5 ms apart) see it; an overlap worth catching lasts far longer.
type ConnWatch struct {
	port int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	last int // the previous sample
	most int // the most seen by two samples in a row
	err  error
}

// connWatchEvery is the sampling period: short enough to catch an overlap
// of two sessions that lasts a few tens of milliseconds.
const connWatchEvery = 5 * time.Millisecond

// WatchConnections samples the established connections to 127.0.0.1:port
// (or [::1]:port) every 5 ms until Stop or the end of the test.
func WatchConnections(t testing.TB, port int) *ConnWatch {
	t.Helper()
	if _, err := EstablishedTo(port); err != nil {
		Need(t, false, "/proc/net/tcp (Linux): "+err.Error())
	}
	w := &ConnWatch{port: port, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.Stop)
	return w
}

func (w *ConnWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(connWatchEvery)
	defer tick.Stop()
	for {
		n, err := EstablishedTo(w.port)
		w.mu.Lock()
		w.most = max(w.most, min(n, w.last))
		w.last = n
		if err != nil && w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the sampling; it may be called more than once.
func (w *ConnWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Most returns the most connections seen established at once (by two
// samples in a row), and the first error reading them.
func (w *ConnWatch) Most() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.most, w.err
}

// EstablishedTo counts the client ends of established TCP connections to
// port in this network namespace (/proc/net/tcp and tcp6: state 01, remote
// port = port). A server's own ends have port as their local port and are
// not counted.
func EstablishedTo(port int) (int, error) {
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			if table == "/proc/net/tcp6" && os.IsNotExist(err) {
				continue // IPv6 is off
			}
			return 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st ...; addresses are HEXIP:HEXPORT.
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "01" {
				continue
			}
			_, rport, ok := strings.Cut(fields[2], ":")
			if !ok {
				f.Close()
				return 0, fmt.Errorf("%s: unexpected address %q", table, fields[2])
			}
			if p, err := strconv.ParseUint(rport, 16, 16); err == nil && int(p) == port {
				n++
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}
