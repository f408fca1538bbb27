package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestHostGuard: requests by IP address, localhost, the listen host, this
// machine's name and http.allowed_hosts are answered; any other Host (a
// DNS-rebinding page) gets 403 with a body that says what to do.
func TestHostGuard(t *testing.T) {
	me, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("status")) })
	g := newHostGuard("nvr.lan:8080", []string{"cams.example.com", ".home.arpa"}, ok)
	tests := []struct {
		host, path string
		want       int
	}{
		{"127.0.0.1:8080", "/api/status", 200},
		{"[::1]:8080", "/api/status", 200},
		{"192.168.1.5:8080", "/api/status", 200},
		{"localhost:8080", "/api/status", 200},
		{"LOCALHOST.:8080", "/api/status", 200},
		{"app.localhost:8080", "/api/status", 200},
		{"nvr.lan:8080", "/api/status", 200},
		{me + ":8080", "/", 200},
		{me + ".local:8080", "/", 200},
		{"cams.example.com", "/api/status", 200},
		{"nvr.home.arpa:8080", "/api/status", 200},
		{"home.arpa", "/api/status", 200},
		{"evil.example:8080", "/api/status", 403},
		{"evil.example:8080", "/api/cameras/door/snapshot.jpg", 403},
		{"evil.example:8080", "/", 403},
		{"example.com", "/api/status", 403},
		{"notcams.example.com", "/api/status", 403},
		{"", "/api/status", 403},
		{"evil.example:8080", "/healthz", 200},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "http://x"+tt.path, nil)
		req.Host = tt.host
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Host %q %s: %d, want %d", tt.host, tt.path, rec.Code, tt.want)
		}
		if tt.want == 403 && !strings.Contains(rec.Body.String(), "http.allowed_hosts") {
			t.Errorf("Host %q: body %q does not say what to do", tt.host, rec.Body.String())
		}
	}
}
