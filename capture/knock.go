package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A knock's time limits. A camera on the LAN connects and answers in
// milliseconds.
const (
	// knockConnect bounds the TCP connection. Two seconds, so that a
	// connection attempt leaves at least every second: the kernel resends an
	// unanswered one after 1 s and only 2 s later after that (exponential
	// before Linux 6.5), the next knock starts a fresh one at 2 s. A host
	// that comes back is then seen within a second or so.
	knockConnect = 2 * time.Second
	// knockAnswer bounds the wait for the first bytes of the answer to
	// RTSP OPTIONS on the connection.
	knockAnswer = 3 * time.Second
	// knockResolve bounds the name lookup, which does not count against
	// knockConnect: a resolver whose first server is down takes 5 s.
	knockResolve = 10 * time.Second
)

// errNoAnswer: the server took the connection but said nothing (it hangs,
// or it is starting: it closed the connection without a word).
var errNoAnswer = errors.New("no answer")

// knock checks that the stream's server answers, without OpenCV: a TCP
// connection to it and, for rtsp://, an answer to an RTSP OPTIONS request
// on that connection (any answer, a 401 too), then it hangs up. It is the
// first step of every open, so that a server that is off, refuses or hangs
// is a Go error that holds no lock (an FFmpeg open holds OpenCV's
// process-wide one, openlock.go, until its timeout), and it is the
// backoff's probe.
//
// It knocks again while no knock has answered: one connection at a time,
// a new knock at most every `every` (and at once after one that ran out of
// time), each bounded by knockConnect and knockAnswer, so a host that
// comes back is seen within about a second however long it was away.
//
// It returns nil at the first answer. With persist it keeps knocking until
// ctx ends (the probe); without, it also returns at the first failure that
// is not silence (refused, no route: a clear answer, reported at once) and,
// when ctx ends, the last failure seen (the open).
func (t target) knock(ctx context.Context, every time.Duration, persist bool) error {
	// ended also sees a deadline that has passed before ctx's own timer
	// has marked it done: a knock cut short by it must not count as a
	// failure of its own, nor start another.
	ended := func() bool {
		dl, ok := ctx.Deadline()
		return ctx.Err() != nil || (ok && !time.Now().Before(dl))
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for {
		began := time.Now()
		err := t.knockOnce(ctx)
		if err == nil {
			return nil
		}
		if ended() {
			if persist {
				return t.over(ctx)
			}
			if last != nil && silent(err) { // err is this knock cut short; last tells more
				return last
			}
			return err
		}
		last = err
		if !persist && !silent(err) {
			return err
		}
		timer.Reset(every - time.Since(began)) // at once when the knock took longer
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		if ended() {
			if persist {
				return t.over(ctx)
			}
			return last
		}
	}
}

// over is the error of a probe whose ctx ended.
func (t target) over(ctx context.Context) error {
	err := ctx.Err()
	if err == nil { // its deadline has passed, its timer not yet fired
		err = context.DeadlineExceeded
	}
	return fmt.Errorf("%s: %w", t.dial, err)
}

// knockOnce is one knock: connect, and for RTSP ask OPTIONS and read the
// first bytes of the answer. Its errors name host:port, never the URL, and
// do not vary from one knock to the next (no durations): a camera that
// fails the same way is logged once.
func (t target) knockOnce(ctx context.Context) error {
	host, port, err := net.SplitHostPort(t.dial)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, knockResolve)
	addrs, err := net.DefaultResolver.LookupHost(lctx, host)
	cancel()
	if err != nil {
		return fmt.Errorf("dial tcp: %w", err) // as Go's own dial says it: "lookup HOST: ..."
	}
	var c net.Conn
	for _, a := range addrs { // as Go's dialer does: the next address when one fails
		cctx, cancel := context.WithTimeout(ctx, knockConnect)
		var d net.Dialer
		var derr error
		c, derr = d.DialContext(cctx, "tcp", net.JoinHostPort(a, port))
		cancel()
		if derr == nil {
			break
		}
		if err == nil {
			err = derr // the first address's: the one a user would look at
		}
		if ctx.Err() != nil {
			break
		}
	}
	if c == nil {
		return fmt.Errorf("dial tcp %s: %w", t.dial, unwrapOp(err))
	}
	defer c.Close()
	if t.optionsURL == "" {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, knockAnswer)
	defer cancel()
	deadline, _ := actx.Deadline()
	c.SetDeadline(deadline)
	stop := context.AfterFunc(actx, func() { c.SetDeadline(time.Now()) }) // ctx cancelled before the deadline
	defer stop()
	req := "OPTIONS " + t.optionsURL + " RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: siglipd\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("%s: RTSP OPTIONS: %w", t.dial, unwrapOp(err))
	}
	var b [1]byte
	switch _, err := c.Read(b[:]); {
	case err == nil:
		return nil
	case silent(err):
		return fmt.Errorf("%s accepted the connection but did not answer RTSP OPTIONS: %w", t.dial, errNoAnswer)
	default:
		// Without err's own words: EOF one time, "connection reset" the
		// next, and a camera that does the same would be logged twice.
		return fmt.Errorf("%s accepted the connection but closed it without answering RTSP OPTIONS: %w", t.dial, errNoAnswer)
	}
}

// unwrapOp drops a *net.OpError's own wording ("dial tcp 127.0.0.1:41845->
// ..."), which the callers replace with theirs.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// silent reports whether err is a knock that got no answer: it ran out of
// time, or the server hung up without a word. Both can end any moment,
// unlike a refusal.
func silent(err error) bool {
	var ne net.Error
	return errors.Is(err, errNoAnswer) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
