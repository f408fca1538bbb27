package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// hostGuard refuses requests whose Host header names a host this server
// was not meant to be reached by. Without it, any web page the user visits
// can read /api/status and the snapshots through DNS rebinding: the page's
// own name is made to resolve to 127.0.0.1, and the browser then treats
// siglipd as same-origin with it (the attack Home Assistant and Jupyter
// guard against the same way). An IP address as Host is always fine: a
// rebinding page has a name, never an address.
//
// Allowed names: localhost (and *.localhost), the host of http.listen, this
// machine's host name (and name.local, as mDNS gives it), and
// http.allowed_hosts, where ".example.com" allows its subdomains too.
// /healthz answers every Host: it says nothing and probes use odd ones.
type hostGuard struct {
	names    map[string]bool
	suffixes []string // ".example.com"
	next     http.Handler
}

func newHostGuard(listen string, allowed []string, next http.Handler) *hostGuard {
	g := &hostGuard{names: map[string]bool{"localhost": true}, next: next}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		g.names[strings.ToLower(host)] = true
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		name = strings.ToLower(name)
		g.names[name] = true
		g.names[name+".local"] = true
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSuffix(a, "."))
		if strings.HasPrefix(a, ".") {
			g.suffixes = append(g.suffixes, a)
		} else {
			g.names[a] = true
		}
	}
	return g
}

func (g *hostGuard) allowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || g.names[host] || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, s := range g.suffixes {
		if strings.HasSuffix(host, s) || host == s[1:] {
			return true
		}
	}
	return false
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" && !g.allowed(r.Host) {
		http.Error(w, fmt.Sprintf("siglipd answers only to its own names, not Host %q: add it to http.allowed_hosts "+
			"(this protects the page from DNS rebinding)", r.Host), http.StatusForbidden)
		return
	}
	g.next.ServeHTTP(w, r)
}
