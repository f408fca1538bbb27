package configs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// Duration is a time.Duration written as "500ms", "10s", "1m30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML prints d the way it is written.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as YAML does ("10s"): the page and the state
// folder's JSON files (labels added on the page) use the config's words.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "10s" (or "0").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"10s\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

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

func (u URL) String() string { return kit.RedactURL(string(u)) }

// MarshalYAML redacts the password.
func (u URL) MarshalYAML() (any, error) { return u.String(), nil }

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
