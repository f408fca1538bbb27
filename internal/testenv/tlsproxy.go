package testenv

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// TLSProxy terminates TLS in front of a plaintext server, as an ingress or
// a gateway does: each TLS connection (ALPN h2, so gRPC clients accept it)
// is forwarded byte for byte to target. Files are its CA (for the client)
// and certificates for 127.0.0.1; it is closed in t.Cleanup.
type TLSProxy struct {
	Addr  string
	Files TLSFiles
}

// StartTLSProxy listens on a free loopback port.
func StartTLSProxy(t testing.TB, target string) *TLSProxy {
	t.Helper()
	files, err := GenerateTLS(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &TLSProxy{Addr: ln.Addr().String(), Files: files}
}
