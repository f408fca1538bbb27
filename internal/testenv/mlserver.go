package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MLServer is a real Open Inference Protocol server — Seldon MLServer, from
// the venv .deps/oip that scripts/setup.sh installs — serving ONNX files
// through ONNX Runtime with scripts/oip/onnx_runtime.py.
type MLServer struct {
	t                  testing.TB
	bin, dir, log      string
	httpPort, grpcPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// mlserverReady bounds a start: MLServer imports for about 3 s of CPU, and
// tests run beside others on two cores.
const mlserverReady = 90 * time.Second

// MLServerPath is the mlserver program of the project's venv; it fails or
// skips t when setup has not installed it.
func MLServerPath(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), ".deps", "oip", "bin", "mlserver")
	_, err := os.Stat(bin)
	Need(t, err == nil, "MLServer (.deps/oip, from scripts/requirements-oip.txt)")
	return bin
}

// Towers are a model folder's two towers as served by the names siglipd's
// inference.remote defaults to, for StartMLServer; suffix picks the variant
// ("" for fp32, "_fp16", ...).
func Towers(dir, suffix string) map[string]string {
	return map[string]string{
		"siglip_vision": filepath.Join(dir, "onnx", "vision_model"+suffix+".onnx"),
		"siglip_text":   filepath.Join(dir, "onnx", "text_model"+suffix+".onnx"),
	}
}

// MLServerOptions shape a test server.
type MLServerOptions struct {
	// Threads is ONNX Runtime's intra-op threads per model: 1 keeps tests
	// beside each other light, 0 lets ONNX Runtime use every core.
	Threads int
	// Slow names models that answer every request 2 s late.
	Slow []string
	// RequireHeader, "name: value", is refused inference without that
	// request header (gRPC metadata), as a gateway with a token would.
	RequireHeader string
}

// StartMLServer serves models (served name → ONNX file) with one thread
// each and waits until the server is ready. It is stopped, and its log
// shown if the test failed, in t.Cleanup.
func StartMLServer(t testing.TB, models map[string]string) *MLServer {
	t.Helper()
	return StartMLServerWith(t, models, MLServerOptions{Threads: 1})
}

// StartMLServerWith is StartMLServer with options.
func StartMLServerWith(t testing.TB, models map[string]string, opts MLServerOptions) *MLServer {
	t.Helper()
	s := NewMLServer(t, models, opts)
	s.Start()
	return s
}

// NewMLServer prepares a server (its ports, its model repository) without
// starting it: Start does, for a test whose server comes up late.
func NewMLServer(t testing.TB, models map[string]string, opts MLServerOptions) *MLServer {
	t.Helper()
	s := &MLServer{t: t, bin: MLServerPath(t), dir: t.TempDir(), httpPort: FreePort(t), grpcPort: FreePort(t)}
	s.log = filepath.Join(s.dir, "mlserver.log")
	repo := filepath.Join(s.dir, "repo")
	// parallel_workers 0: inference in the server process (the worker
	// processes of the default fail to start with the uvloop pip
	// installs); host 127.0.0.1 rather than every interface; no third
	// (metrics) port; gRPC messages up to 256 MiB, not 4.
	settings := map[string]any{"host": "127.0.0.1", "parallel_workers": 0, "metrics_endpoint": nil, "gzip_enabled": false,
		"load_models_at_startup": true, "grpc_max_message_length": 256 << 20}
	writeJSONFile(t, filepath.Join(repo, "settings.json"), settings)
	for name, path := range models {
		extra := map[string]any{"intra_op_num_threads": opts.Threads}
		if slices.Contains(opts.Slow, name) {
			extra["delay_seconds"] = 2
		}
		if opts.RequireHeader != "" {
			extra["require_header"] = opts.RequireHeader
		}
		writeJSONFile(t, filepath.Join(repo, name, "model-settings.json"), map[string]any{
			"name": name, "implementation": "onnx_runtime.OnnxModel", "platform": "onnxruntime_onnx",
			"parameters": map[string]any{"uri": path, "version": "1", "extra": extra},
		})
	}
	t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("MLServer log (%s), last lines:\n%s", s.log, tail(string(b), 40))
		}
	})
	return s
}

func writeJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Addr is the gRPC endpoint, host:port.
func (s *MLServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.grpcPort) }

// Start starts the server (again) on the same ports and waits until it
// says it is ready.
func (s *MLServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "start", filepath.Join(s.dir, "repo"))
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(),
		"PYTHONPATH="+filepath.Join(RepoRoot(s.t), "scripts", "oip"),
		"MLSERVER_HTTP_PORT="+strconv.Itoa(s.httpPort), "MLSERVER_GRPC_PORT="+strconv.Itoa(s.grpcPort))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		s.t.Fatalf("mlserver: start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	// Ready means every model loaded: MLServer loads them before it
	// listens. A model that fails to load makes it exit (with status 0).
	url := fmt.Sprintf("http://127.0.0.1:%d/v2/health/ready", s.httpPort)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(mlserverReady)
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(s.log)
			s.t.Fatalf("mlserver exited at start; log:\n%s", tail(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			s.t.Fatalf("mlserver not ready within %s; log:\n%s", mlserverReady, tail(string(b), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the running server's process id (0 when stopped).
func (s *MLServer) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *MLServer) Kill() {
	s.t.Helper()
	if err := s.stop(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
}

func (s *MLServer) stop(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("mlserver did not stop within 15s of %s", sig)
	}
}
