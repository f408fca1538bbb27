package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// jsonScanner walks JSON that encoding/json has already validated, without
// reflection. It exists for the two big tables of a BPE tokenizer.json —
// Gemma's has 256,000 vocabulary entries and 580,604 merges — which
// encoding/json decodes several times slower, allocating a value per entry
// that is dropped at once. Because the input is known to be valid, the
// scanner only finds boundaries; anything unusual in a string (escapes,
// invalid UTF-8) is handed to encoding/json, so the decoded text is exactly
// what json.Unmarshal would give.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it (0 at the end).
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// expect consumes the byte c (after spaces) or fails.
func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return fmt.Errorf("at byte %d: want %q", s.i, c)
	}
	s.i++
	return nil
}

// more reports whether an array or object continues after an element: it
// consumes a ',' (true) or the closing byte (false).
func (s *jsonScanner) more(closing byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.i++
		return true, nil
	case closing:
		s.i++
		return false, nil
	}
	return false, fmt.Errorf("at byte %d: want ',' or %q", s.i, closing)
}

// str decodes the string at the cursor, appending it to buf.
func (s *jsonScanner) str(buf []byte) ([]byte, error) {
	if s.peek() != '"' {
		return buf, fmt.Errorf("at byte %d: want a string", s.i)
	}
	start := s.i
	plain := true
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if plain {
				return append(buf, s.b[start+1:s.i-1]...), nil
			}
			var v string
			if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
				return buf, err
			}
			return append(buf, v...), nil
		case c == '\\':
			plain = false
			s.i += 2
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				plain = false // encoding/json turns it into U+FFFD
			}
			s.i += n
		}
	}
	return buf, fmt.Errorf("at byte %d: unterminated string", start)
}

// integer decodes a JSON number that must be an int.
func (s *jsonScanner) integer() (int, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] == '+' || s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E' || (s.b[s.i] >= '0' && s.b[s.i] <= '9')) {
		s.i++
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil {
		return 0, fmt.Errorf("at byte %d: %q is not an integer", start, s.b[start:s.i])
	}
	return n, nil
}

// skip moves past one value of any kind and returns its bytes.
func (s *jsonScanner) skip() ([]byte, error) {
	s.ws()
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			if _, err := s.str(nil); err != nil {
				return nil, err
			}
			if depth == 0 {
				return s.b[start:s.i], nil
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return s.b[start:s.i], nil // the end of a scalar inside a container
			}
			depth--
			if depth == 0 {
				s.i++
				return s.b[start:s.i], nil
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
		}
		s.i++
	}
	if depth != 0 || s.i == start {
		return nil, fmt.Errorf("at byte %d: truncated value", start)
	}
	return s.b[start:s.i], nil
}

// object calls field for each key of the object at the cursor, with the
// cursor on the key's value; field must consume the value. key is valid
// only during the call.
func (s *jsonScanner) object(field func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var key []byte
	for {
		var err error
		if key, err = s.str(key[:0]); err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		if more, err := s.more('}'); err != nil || !more {
			return err
		}
	}
}

// array calls elem for each element of the array at the cursor; elem must
// consume the element.
func (s *jsonScanner) array(elem func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		if more, err := s.more(']'); err != nil || !more {
			return err
		}
	}
}
