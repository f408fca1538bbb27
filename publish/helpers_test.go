package publish

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// helperEnv switches the test binary into the "daemon" child of the SIGKILL
// tests (see TestMain and childMain).
const helperEnv = "SIGLIPD_PUBLISH_HELPER_OPTS"

func TestMain(m *testing.M) {
	if opts := os.Getenv(helperEnv); opts != "" {
		os.Exit(childMain(opts))
	}
	os.Exit(m.Run())
}

// testEvent is the i-th event of a made-up stream: pairs of start and end of
// one label, a second apart. The tests and the child process both use it,
// so a test knows what the child produced.
func testEvent(i int) rules.Event {
	pair := i / 2
	start := time.Date(2024, 11, 27, 16, 0, 0, 0, time.UTC).Add(time.Duration(pair) * time.Second)
	ev := rules.Event{V: 1, Type: rules.TypeStart, ID: fmt.Sprintf("%d.000000-driveway-car", start.Unix()),
		Camera: "driveway", Label: "car", Prompts: []string{"a car"}, Score: 0.8, TopScore: 0.8, Threshold: 0.5,
		StartTime: start, FrameTime: start}
	if i%2 == 1 {
		end := start.Add(500 * time.Millisecond)
		ev.Type, ev.EndTime, ev.FrameTime, ev.Score = rules.TypeEnd, &end, end, 0.1
	}
	return ev
}

// key is what a subscriber de-duplicates on (docs/03-mqtt-home-assistant.md, "Delivery").
func key(ev rules.Event) string { return ev.ID + "/" + ev.Type + "/" + ev.FrameTime.String() }

// received is one message a subscriber got.
type received struct {
	Topic    string
	Payload  string
	Retained bool
	At       time.Time
}

// subscriber is a real paho client recording what it receives.
type subscriber struct {
	t  testing.TB
	c  mqtt.Client
	mu sync.Mutex
	rx []received
}

// subscribe connects a subscriber and subscribes (QoS 1) to filters. With
// persistent, it keeps its session (clean session off) and reconnects by
// itself after a broker restart, as a Home Assistant or Node-RED would.
func subscribe(t testing.TB, broker, id string, persistent bool, filters ...string) *subscriber {
	t.Helper()
	s := &subscriber{t: t}
	o := newSubOptions(broker, id, s)
	o.SetCleanSession(!persistent).SetAutoReconnect(persistent)
	return connectSub(t, s, o, filters...)
}

// newSubOptions are a subscriber's client options: recording every message,
// in order, and reconnecting quickly when the broker comes back.
func newSubOptions(broker, id string, s *subscriber) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetMaxReconnectInterval(200 * time.Millisecond).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
		SetDefaultPublishHandler(s.record)
}

func connectSub(t testing.TB, s *subscriber, o *mqtt.ClientOptions, filters ...string) *subscriber {
	t.Helper()
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: connect: %v", tok.Error())
	}
	for _, f := range filters {
		if tok := s.c.Subscribe(f, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscriber: subscribe %s: %v", f, tok.Error())
		}
	}
	t.Cleanup(func() { s.c.Disconnect(0) })
	return s
}

func (s *subscriber) record(_ mqtt.Client, msg mqtt.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rx = append(s.rx, received{msg.Topic(), string(msg.Payload()), msg.Retained(), time.Now()})
}

// on returns what arrived on topic, in order.
// mark is how many messages have arrived so far; since(mark) is what
// came after. Both hold the lock: paho delivers on its own goroutines.
func (s *subscriber) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rx)
}

func (s *subscriber) since(mark int) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rx[mark:])
}

func (s *subscriber) on(topic string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, r := range s.rx {
		if r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

// last returns the last payload on topic and whether there was one.
func (s *subscriber) last(topic string) (received, bool) {
	rs := s.on(topic)
	if len(rs) == 0 {
		return received{}, false
	}
	return rs[len(rs)-1], true
}

// events parses what arrived on the events topic: all of it (raw, with
// duplicates) and what a subscriber keeps after de-duplicating by key.
func (s *subscriber) events(topic string) (raw, kept []rules.Event) {
	seen := map[string]bool{}
	for _, r := range s.on(topic) {
		var ev rules.Event
		if err := json.Unmarshal([]byte(r.Payload), &ev); err != nil {
			s.t.Errorf("event payload is not JSON: %v: %s", err, r.Payload)
			continue
		}
		raw = append(raw, ev)
		if !seen[key(ev)] {
			seen[key(ev)] = true
			kept = append(kept, ev)
		}
	}
	return raw, kept
}

// logBuffer captures a sink's log lines for assertions.
type logBuffer struct{ testenv.SyncBuffer }

// count counts the log lines containing every one of parts.
func (l *logBuffer) count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// testLogger logs to the returned buffer and, when the test fails, shows it.
func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sink log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// startSink makes and starts an MQTT sink; it is closed at cleanup if the
// test did not close it.
func startSink(t testing.TB, opts MQTTOptions) *MQTT {
	t.Helper()
	m, err := NewMQTT(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return m
}

// child is the test binary re-run as a minimal daemon: an MQTT sink driven
// by commands on stdin, so tests can SIGKILL a real process.
type child struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	log   *logBuffer
	done  chan struct{}
	state *os.ProcessState
}

func startChild(t testing.TB, opts MQTTOptions) *child {
	t.Helper()
	opts.Logger = nil
	b, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, log: &logBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	c.cmd.Stderr = c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.in, _ = c.cmd.StdinPipe()
	stdout, _ := c.cmd.StdoutPipe()
	c.out = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owner of the process: reaps it; kill and cleanup wait on done
		c.state, _ = c.cmd.Process.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("child %d log:\n%s", c.cmd.Process.Pid, c.log.String())
		}
	})
	c.do("ready")
	return c
}

// do sends a command and returns the child's one-line answer.
func (c *child) do(cmd string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		c.t.Fatalf("child: send %q: %v", cmd, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.t.Fatalf("child: answer to %q: %v\nlog:\n%s", cmd, err, c.log.String())
	}
	return strings.TrimSpace(line)
}

func (c *child) status() Status {
	c.t.Helper()
	var st Status
	if err := json.Unmarshal([]byte(c.do("status")), &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// childMain is the child: it makes the sink from the options in the
// environment and answers commands, one line each:
//
//	ready           → ok (the sink is started)
//	events FROM TO  → ok, after Event(testEvent(i)) for FROM ≤ i < TO
//	status          → Status as JSON
//	close           → ok, after Close; then exits 0
func childMain(optsJSON string) int {
	var opts MQTTOptions
	if err := json.Unmarshal([]byte(optsJSON), &opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := NewMQTT(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := m.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "ready":
		case len(f) == 3 && f[0] == "events":
			from, _ := strconv.Atoi(f[1])
			to, _ := strconv.Atoi(f[2])
			for i := from; i < to; i++ {
				m.Event(testEvent(i), nil)
			}
		case len(f) == 1 && f[0] == "status":
			b, _ := json.Marshal(m.Status())
			fmt.Println(string(b))
			continue
		case len(f) == 1 && f[0] == "close":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := m.Close(ctx)
			cancel()
			fmt.Println("ok")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		default:
			fmt.Fprintf(os.Stderr, "child: unknown command %q\n", in.Text())
			return 2
		}
		fmt.Println("ok")
	}
	return 0
}

// connected waits until the sink reports a session.
func connected(t testing.TB, st func() Status) {
	t.Helper()
	testenv.WaitFor(t, 15*time.Second, func() bool { return st().Connected }, "the sink to connect")
}

// lossyProxy forwards TCP between the sink and the broker, and can lose
// what the broker sends back (drop) and cut every connection (cut): the
// way to lose a PUBACK on purpose.
type lossyProxy struct {
	l      net.Listener
	target string
	drop   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup // the accept loop and the copiers
}

func startProxy(t testing.TB, target string) *lossyProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *lossyProxy) URL() string { return "tcp://" + p.l.Addr().String() }

func (p *lossyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(b, c); b.Close() }()
		go func() { defer p.wg.Done(); p.copyBack(c, b); c.Close() }()
	}
}

// copyBack forwards broker → sink, discarding while drop is set.
func (p *lossyProxy) copyBack(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection made so far.
func (p *lossyProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
