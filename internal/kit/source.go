package kit

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SourceKind is what kind of source a camera URL names.
type SourceKind int

// Source kinds, as understood from a camera URL.
const (
	SourceInvalid SourceKind = iota
	SourceStream             // rtsp, rtsps, http, https
	SourceFile               // file:// or a path
	SourceDevice             // /dev/videoN, /dev/v4l/by-id/…, /dev/v4l/by-path/… or a USB index
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
	case strings.HasPrefix(s, "/dev/video"), strings.HasPrefix(s, "/dev/v4l/"):
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

// DefaultOpenTimeout is the open_timeout of a camera that sets neither it nor
// a read_timeout above it. It covers the connection and a keyframe interval
// of up to ≈ 15 s (most cameras send a keyframe every 1–4 s; "smart codec"
// modes stretch it to 10 s or more).
const DefaultOpenTimeout = 20 * time.Second

// OpenTimeoutFor is the open_timeout of a camera that does not set one: the
// larger of DefaultOpenTimeout and its read_timeout (an open also waits for
// a frame, so it may never be held to less).
func OpenTimeoutFor(readTimeout time.Duration) time.Duration {
	return max(DefaultOpenTimeout, readTimeout)
}
