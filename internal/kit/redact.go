package kit

import "regexp"

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
