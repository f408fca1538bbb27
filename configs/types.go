package configs

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "500ms", "10s", "1m30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML prints d the way it is written.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func parseDuration(s string) (Duration, error) {
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write e.g. 500ms, 10s, 1m)", s)
	}
	return Duration(v), nil
}

// ByteSize is a size in bytes written as 262144, "256KiB", "1MiB" or "1MB".
type ByteSize int64

// MarshalYAML prints the size in the largest binary unit that divides it.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.n, u.name)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

var byteSizeRe = regexp.MustCompile(`^\s*([0-9]+)\s*([a-zA-Z]*)\s*$`)

func parseByteSize(s string) (ByteSize, error) {
	m := byteSizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (write e.g. 262144, 256KiB, 1MiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	units := map[string]int64{
		"": 1, "b": 1,
		"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	}
	mult, ok := units[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB, GiB)", s, m[2])
	}
	return ByteSize(n * mult), nil
}

// Secret is a string that never prints: String and MarshalYAML give "***".
// Use Reveal where the value is really needed (to log in to a broker).
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// MarshalYAML redacts the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// URL is a camera address; it may carry credentials, so String and
// MarshalYAML redact the password.
type URL string

// Reveal returns the URL with its credentials, for opening the stream.
func (u URL) Reveal() string { return string(u) }

func (u URL) String() string { return RedactURL(string(u)) }

// MarshalYAML redacts the password.
func (u URL) MarshalYAML() (any, error) { return u.String(), nil }

// userinfoRe finds "scheme://user:pass@" even in strings net/url cannot
// parse (FFmpeg error text, half-typed URLs), so redaction never depends on
// the rest of the URL being valid.
// The password part is greedy up to the last "@" before the path, as in
// net/url, so an unescaped "@" in a password is still hidden.
var userinfoRe = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*):([^/\s]*)@`)

// secretParamRe finds the value of a credential-like query parameter
// (pwd=, password=, api_key=, access_token=, auth=, sig=, …: any name that
// contains pass, pwd, token, auth, key, secret, sig or cred, in any case), as
// cheap HTTP cameras take credentials in the query string. It needs the
// "?", "&" or ";" before the name, so words in prose are left alone.
var secretParamRe = regexp.MustCompile(`(?i)([?&;][^=&;?#\s"'<>]*(?:pass|pwd|token|auth|key|secret|sig|cred)[^=&;?#\s"'<>]*=)([^&;#\s"'<>]+)`)

// RedactURL replaces the password of every "scheme://user:pass@" in s, and
// the value of every credential-like query parameter, with "***". Strings
// without credentials come back unchanged.
func RedactURL(s string) string {
	// Query parameters first: the password pattern runs to the last "@"
	// before a "/" (an unescaped "@" in a password stays hidden), and in
	// "http://u:p@h?a=1&@key=v" that takes "?a=1&" with it, leaving "key=v"
	// with no "&" before it (found by FuzzRedactURL).
	s = secretParamRe.ReplaceAllString(s, "${1}***")
	return userinfoRe.ReplaceAllString(s, "${1}${2}:***@")
}

// SourceKind is what kind of source a camera URL names.
type SourceKind int

// Source kinds, as understood from a camera URL.
const (
	SourceInvalid SourceKind = iota
	SourceStream             // rtsp, rtsps, http, https
	SourceFile               // file:// or a path
	SourceDevice             // /dev/videoN or a USB index
)

// ParseSource classifies a camera URL. The error never contains the URL
// (it may hold a password); it names only the offending part.
func ParseSource(raw string) (SourceKind, error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return SourceInvalid, fmt.Errorf("must not be empty")
	case isDigits(s):
		return SourceDevice, nil
	case strings.HasPrefix(s, "/dev/video"):
		return SourceDevice, nil
	case !strings.Contains(s, "://"):
		return SourceFile, nil
	}
	scheme, _, _ := strings.Cut(s, "://")
	switch strings.ToLower(scheme) {
	case "rtsp", "rtsps", "http", "https":
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return SourceInvalid, fmt.Errorf("%s URL has no host", strings.ToLower(scheme))
		}
		return SourceStream, nil
	case "file":
		return SourceFile, nil
	default:
		return SourceInvalid, fmt.Errorf("unsupported scheme %q (want rtsp, rtsps, http, https, file, a file path, /dev/videoN or a USB index)", scheme)
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// defaultStateDir follows systemd's StateDirectory= and then XDG.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "siglipd")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "siglipd")
	}
	return "siglipd-state"
}
