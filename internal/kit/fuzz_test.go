package kit

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// FuzzRedactURL: whatever surrounds it, a password in scheme://user:pw@host
// and the value of a credential-like query parameter never survive
// RedactURL, and redacting twice changes nothing more.
func FuzzRedactURL(f *testing.F) {
	f.Add("rtsp", "admin", "hunter2", "10.0.0.2:554/live", "pwd", "S3cret", "err: ")
	f.Add("http", "", "p@ss", "cam/video.mjpg", "api_key", "abc", "")
	f.Add("rtsps", "u", ":", "h", "X-Amz-Signature", "ff00", `"`)
	f.Fuzz(func(t *testing.T, scheme, user, password, rest, param, value, prefix string) {
		if !isScheme(scheme) || !plain(user, ":@/?#&;=") || !plain(password, "/@?#&;=") || password == "" ||
			!plain(rest, "@?#&;=") || !plain(param, "=&;?#") || !plain(value, "&;#") || value == "" ||
			!secretName(param) {
			return
		}
		if strings.Trim(password, "*") == "" || strings.Trim(value, "*") == "" {
			return // indistinguishable from the redaction
		}
		s := prefix + scheme + "://" + user + ":" + password + "@" + rest + "?a=1&" + param + "=" + value
		got := RedactURL(s)
		if strings.Contains(got, ":"+password+"@") || !strings.Contains(got, ":***@") {
			t.Fatalf("RedactURL(%q) = %q keeps the password", s, got)
		}
		if !strings.HasSuffix(got, "="+"***") {
			t.Fatalf("RedactURL(%q) = %q keeps %s's value", s, got, param)
		}
		if again := RedactURL(got); again != got {
			t.Fatalf("RedactURL is not idempotent: %q then %q", got, again)
		}
	})
}

func isScheme(s string) bool {
	if s == "" || !unicode.IsLetter(rune(s[0])) || s[0] > unicode.MaxASCII {
		return false
	}
	u, err := url.Parse(s + "://h")
	return err == nil && strings.EqualFold(u.Scheme, s)
}

// plain: no whitespace, no quote or angle bracket, none of the delimiters.
func plain(s, delims string) bool {
	return !strings.ContainsAny(s, delims+" \t\r\n\v\f\"'<>\u0085\u00a0")
}

func secretName(p string) bool {
	p = strings.ToLower(p)
	for _, w := range []string{"pass", "pwd", "token", "auth", "key", "secret", "sig", "cred"} {
		if strings.Contains(p, w) {
			return true
		}
	}
	return false
}
