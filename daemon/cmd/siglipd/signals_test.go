package main

import (
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestSignals: SIGHUP asks for a reload (several at once for one), SIGTERM
// cancels the context, and stop leaves no goroutine behind.
func TestSignals(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ctx, reload, stop := signals()
	for range 3 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-reload:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP gave no reload request")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	stop()
	goleak.VerifyNone(t, before)
}
