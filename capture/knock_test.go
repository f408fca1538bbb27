package capture

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// rtspAnswerer is a server that answers RTSP OPTIONS the way a camera
// does (here with a 401, which counts as an answer), recording the request
// line it got.
func rtspAnswerer(t *testing.T) (addr string, requests <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() { // owned by the test: ends when ln is closed
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			select {
			case got <- strings.TrimSpace(line):
			default:
			}
			c.Write([]byte("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), got
}

// hangingUp is a server that closes every connection at once, without a
// word (a camera's RTSP service starting up).
func hangingUp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // owned by the test: ends when ln is closed
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestKnock: how the knock (the first step of an open, and the backoff's
// probe) judges a stream's server, and how soon it sees one come back.
func TestKnock(t *testing.T) {
	testenv.Integration(t) // about 15 s of timeouts
	answering, requests := rtspAnswerer(t)
	refused := testenv.StartLink(t, answering, testenv.LinkRefused)
	hung := testenv.StartLink(t, answering, testenv.LinkSilent)
	hangsUp := hangingUp(t)
	blackhole := testenv.StartLink(t, answering, testenv.LinkBlackhole)

	target := func(addr string) target {
		_, tg, err := withDefaults(Options{Name: "cam", URL: "rtsp://admin:hunter2@" + addr + "/live?token=x", FPS: 1})
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	tests := []struct {
		name   string
		addr   string
		budget time.Duration // for the open's knock
		want   string        // "" for an answer
		silent bool          // a failure to knock again on
		within time.Duration
	}{
		{"answers (a 401 counts)", answering, 5 * time.Second, "", false, time.Second},
		{"refused", refused.Addr(), 5 * time.Second, "connect: connection refused", false, time.Second},
		{"accepts, never answers", hung.Addr(), knockAnswer + 500*time.Millisecond, "accepted the connection but did not answer RTSP OPTIONS", true, 5 * time.Second},
		{"accepts, hangs up", hangsUp, 1500 * time.Millisecond, "accepted the connection but closed it without answering RTSP OPTIONS", true, 2 * time.Second},
		{"dials time out", blackhole.Addr(), knockConnect + 500*time.Millisecond, "i/o timeout", true, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.budget)
			defer cancel()
			began := time.Now()
			err := target(tt.addr).knock(ctx, 200*time.Millisecond, false)
			took := time.Since(began)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("knock = %v, want an answer", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("knock = %v, want %q", err, tt.want)
			case err != nil && silent(err) != tt.silent:
				t.Errorf("silent(%v) = %v, want %v", err, silent(err), tt.silent)
			case took > tt.within:
				rateError(t, "knock took %s, want within %s", took, tt.within)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the password is in %v", err)
			}
		})
	}
	select {
	case req := <-requests:
		if want := "OPTIONS rtsp://" + answering + "/live RTSP/1.0"; req != want {
			t.Errorf("request line %q, want %q (no credentials, no query)", req, want)
		}
	default:
		t.Error("the answering server got no request")
	}

	// The probe keeps knocking; a server that comes back is seen within
	// about a knock interval, however it was unreachable before.
	for _, lk := range []*testenv.Link{refused, hung, blackhole} {
		t.Run("comes back after "+lk.Mode().String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			answered := make(chan error, 1)
			go func() { answered <- target(lk.Addr()).knock(ctx, time.Second, true) }()
			// Long enough for knocks to be in flight, each at its own
			// point of its timeout: the condition here is the passing of
			// time itself.
			time.Sleep(2500 * time.Millisecond)
			lk.Set(testenv.LinkUp)
			back := time.Now()
			select {
			case err := <-answered:
				took := time.Since(back)
				t.Logf("answered %s after the server came back", took.Round(time.Millisecond))
				switch {
				case err != nil:
					t.Errorf("knock = %v, want an answer", err)
				case took > 1500*time.Millisecond:
					rateError(t, "answered %s after the server came back, want within 1.5 s", took)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer within 10 s of the server's return")
			}
		})
	}

	// Cancelling ends a knock at once, knocks in flight included.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	hole := testenv.StartLink(t, answering, testenv.LinkBlackhole)
	go func() { done <- target(hole.Addr()).knock(ctx, 100*time.Millisecond, true) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled knock = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Error("knock did not return within 1 s of cancel")
	}
}
