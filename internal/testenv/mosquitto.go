package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mosquittoReady bounds how long a broker may take to accept connections.
// It starts in milliseconds (docs/measurements.md); the margin is for
// loaded CI machines.
const mosquittoReady = 10 * time.Second

// Mosquitto is a real mosquitto broker on free loopback ports, with its own
// configuration, persistence and log under t.TempDir(). Persistence is on, so
// a broker stopped with Stop and started again with Start keeps its retained
// messages and the sessions (subscriptions, queued QoS 1 messages) of
// clients that connected with clean session off.
type Mosquitto struct {
	t    testing.TB
	bin  string
	dir  string
	conf string
	log  string

	port, tlsPort int

	// User and Password are set with WithPassword: anonymous clients are then
	// refused.
	User, Password string
	// TLS holds the generated CA and certificates when WithTLS was given.
	TLS *TLSFiles

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// MosquittoOption configures StartMosquitto.
type MosquittoOption func(*mosquittoOptions)

type mosquittoOptions struct {
	user, password string
	tls            bool
	clientCerts    bool
}

// WithPassword makes the broker require this user name and password.
func WithPassword(user, password string) MosquittoOption {
	return func(o *mosquittoOptions) { o.user, o.password = user, password }
}

// WithTLS adds a TLS listener (see TLSURL) whose server certificate is
// signed by a CA generated for the test (see Mosquitto.TLS).
func WithTLS() MosquittoOption { return func(o *mosquittoOptions) { o.tls = true } }

// WithClientCerts is WithTLS where the TLS listener also requires a client
// certificate signed by the test CA (Mosquitto.TLS.ClientCert/ClientKey).
func WithClientCerts() MosquittoOption {
	return func(o *mosquittoOptions) { o.tls, o.clientCerts = true, true }
}

// MosquittoPath finds the broker: on PATH, else where Debian installs it
// (/usr/sbin is not on a normal user's PATH). It fails or skips t (see Need)
// when mosquitto is not installed.
func MosquittoPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	const debian = "/usr/sbin/mosquitto"
	_, err := os.Stat(debian)
	Need(t, err == nil, "mosquitto (Debian package mosquitto)")
	return debian
}

// StartMosquitto starts a broker and waits until it accepts connections. It
// is stopped, and its log shown if the test failed, in t.Cleanup.
func StartMosquitto(t testing.TB, opts ...MosquittoOption) *Mosquitto {
	t.Helper()
	var o mosquittoOptions
	for _, opt := range opts {
		opt(&o)
	}
	m := &Mosquitto{t: t, bin: MosquittoPath(t), dir: t.TempDir(), port: FreePort(t)}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	m.log = filepath.Join(m.dir, "mosquitto.log")

	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", m.port)
	if o.tls {
		m.tlsPort = FreePort(t)
		files, err := GenerateTLS(filepath.Join(m.dir, "tls"))
		if err != nil {
			t.Fatalf("mosquitto: generate TLS files: %v", err)
		}
		m.TLS = &files
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
			m.tlsPort, files.CAFile, files.ServerCert, files.ServerKey)
		if o.clientCerts {
			conf.WriteString("require_certificate true\n")
		}
	}
	if o.user != "" {
		m.User, m.Password = o.user, o.password
		pw := filepath.Join(m.dir, "passwords")
		passwd := "/usr/bin/mosquitto_passwd" // same Debian package as the broker
		if p, err := exec.LookPath("mosquitto_passwd"); err == nil {
			passwd = p
		}
		if out, err := exec.Command(passwd, "-c", "-b", pw, o.user, o.password).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		conf.WriteString("allow_anonymous true\n")
	}
	fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\n", m.dir)
	// Started as root, mosquitto drops to user "mosquitto", which cannot
	// write the test's private folder; naming the current user keeps it.
	// (Ignored when not started as root.)
	if u, err := user.Current(); err == nil {
		fmt.Fprintf(&conf, "user %s\n", u.Username)
	}
	conf.WriteString("log_dest stderr\nlog_type all\nlog_timestamp_format %H:%M:%S\n")
	// Tests queue more than the default 1000 QoS 1 messages for an offline
	// subscriber only on purpose; leave room for that.
	conf.WriteString("max_queued_messages 100000\n")
	if err := os.WriteFile(m.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		m.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("mosquitto log (%s), last lines:\n%s", m.log, tail(m.Log(), 60))
		}
	})
	m.Start()
	return m
}

// Addr is the plain listener, host:port.
func (m *Mosquitto) Addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// URL is the plain listener as a broker URL for paho: tcp://127.0.0.1:PORT.
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// TLSAddr is the TLS listener, host:port ("" without WithTLS).
func (m *Mosquitto) TLSAddr() string {
	if m.tlsPort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(m.tlsPort)
}

// TLSURL is the TLS listener as a broker URL: ssl://127.0.0.1:PORT.
func (m *Mosquitto) TLSURL() string {
	if m.tlsPort == 0 {
		return ""
	}
	return "ssl://" + m.TLSAddr()
}

// Dir is the broker's folder: config, persistence file, log.
func (m *Mosquitto) Dir() string { return m.dir }

// Log returns everything the broker has logged so far, across restarts.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// Running reports whether the broker process is alive.
func (m *Mosquitto) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Start starts the broker (again) on the same ports, config and data, and
// waits until every listener accepts connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	if m.done != nil {
		select {
		case <-m.done:
		default:
			m.mu.Unlock()
			m.t.Fatal("mosquitto: Start while running")
		}
	}
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.mu.Unlock()
		m.t.Fatal(err)
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, the broker dies with it rather than lingering.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.mu.Unlock()
		m.t.Fatalf("mosquitto: start %s: %v", m.bin, err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	// The owner of the process: reaps it and marks it gone.
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()

	addrs := []string{m.Addr()}
	if m.tlsPort != 0 {
		addrs = append(addrs, m.TLSAddr())
	}
	deadline := time.Now().Add(mosquittoReady)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				m.t.Fatalf("mosquitto exited at start; log:\n%s", tail(m.Log(), 30))
			default:
			}
			if time.Now().After(deadline) {
				m.t.Fatalf("mosquitto did not accept connections on %s within %s; log:\n%s", a, mosquittoReady, tail(m.Log(), 30))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Stop stops the broker cleanly (SIGTERM): it saves sessions and retained
// messages, which the next Start loads.
func (m *Mosquitto) Stop() {
	m.t.Helper()
	if err := m.stop(syscall.SIGTERM); err != nil {
		m.t.Fatal(err)
	}
}

// Kill stops the broker with SIGKILL: nothing is saved since the last save.
func (m *Mosquitto) Kill() {
	m.t.Helper()
	if err := m.stop(syscall.SIGKILL); err != nil {
		m.t.Fatal(err)
	}
}

func (m *Mosquitto) stop(sig syscall.Signal) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("mosquitto did not stop within 10s of " + sig.String() + "; killed")
	}
}

func tail(s string, n int) string {
	lines := bytes.Split([]byte(strings.TrimRight(s, "\n")), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
