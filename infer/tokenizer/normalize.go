package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rivo/uniseg"
	"golang.org/x/text/unicode/norm"
)

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var spec struct {
		Type                string            `json:"type"`
		Normalizers         []json.RawMessage `json:"normalizers"`
		PrecompiledCharsmap string            `json:"precompiled_charsmap"`
		Pattern             struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content    string `json:"content"`
		Prepend    string `json:"prepend"`
		StripLeft  bool   `json:"strip_left"`
		StripRight bool   `json:"strip_right"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	switch spec.Type {
	case "Sequence":
		var seq sequenceNormalizer
		for i, r := range spec.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("normalizers[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Precompiled":
		if spec.PrecompiledCharsmap == "" {
			return nil, nil // an empty map normalizes nothing, as in tokenizers
		}
		return parsePrecompiled(spec.PrecompiledCharsmap)
	case "Replace":
		switch {
		case spec.Pattern.String != nil:
			return replaceNormalizer{literal: *spec.Pattern.String, content: spec.Content}, nil
		case spec.Pattern.Regex != nil:
			re, err := regexp.Compile(*spec.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Replace regex %q: %w", *spec.Pattern.Regex, err)
			}
			return replaceNormalizer{re: re, content: spec.Content}, nil
		}
		return nil, errors.New("Replace has no pattern")
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return funcNormalizer(strings.ToLower), nil
	case "Prepend":
		p := spec.Prepend
		return funcNormalizer(func(s string) string {
			if s == "" {
				return s // tokenizers' prepend leaves an empty string empty
			}
			return p + s
		}), nil
	case "Strip":
		l, r := spec.StripLeft, spec.StripRight
		return funcNormalizer(func(s string) string {
			if l {
				s = strings.TrimLeft(s, " \t\n\r\v\f")
			}
			if r {
				s = strings.TrimRight(s, " \t\n\r\v\f")
			}
			return s
		}), nil
	}
	return nil, fmt.Errorf("type %q is not supported", spec.Type)
}

type sequenceNormalizer []normalizer

func (s sequenceNormalizer) normalize(text string) string {
	for _, n := range s {
		text = n.normalize(text)
	}
	return text
}

type funcNormalizer func(string) string

func (f funcNormalizer) normalize(s string) string { return f(s) }

type unicodeNormalizer struct{ form norm.Form }

func (u unicodeNormalizer) normalize(s string) string { return u.form.String(s) }

type replaceNormalizer struct {
	literal string
	re      *regexp.Regexp
	content string
}

func (r replaceNormalizer) normalize(s string) string {
	if r.re != nil {
		return r.re.ReplaceAllLiteralString(s, r.content)
	}
	return strings.ReplaceAll(s, r.literal, r.content)
}

// precompiled is SentencePiece's normalization rule set ("nmt_nfkc" for
// SigLIP) as stored in tokenizer.json: a Darts double-array trie over UTF-8
// byte sequences whose values are offsets of replacement strings.
type precompiled struct {
	trie       []uint32
	normalized []byte // NUL-terminated replacement strings
}

func parsePrecompiled(b64 string) (*precompiled, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("precompiled_charsmap: %w", err)
	}
	if len(raw) < 4 {
		return nil, errors.New("precompiled_charsmap: too short")
	}
	trieSize := int(binary.LittleEndian.Uint32(raw))
	if trieSize%4 != 0 || 4+trieSize > len(raw) {
		return nil, fmt.Errorf("precompiled_charsmap: trie size %d does not fit in %d bytes", trieSize, len(raw))
	}
	p := &precompiled{trie: make([]uint32, trieSize/4), normalized: raw[4+trieSize:]}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(raw[4+4*i:])
	}
	return p, nil
}

// Darts unit fields (darts-clone's DoubleArrayUnit).
func unitHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func unitValue(u uint32) uint32  { return u & (1<<31 - 1) }
func unitLabel(u uint32) uint32  { return u & (1<<31 | 0xff) }
func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// firstMatch returns the replacement of the shortest key that is a prefix
// of s. (tokenizers uses the first of the common-prefix results, i.e. the
// shortest, not the longest.)
func (p *precompiled) firstMatch(s string) (string, bool) {
	pos := uint32(0)
	if len(p.trie) == 0 {
		return "", false
	}
	pos ^= unitOffset(p.trie[0])
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(p.trie) {
			return "", false
		}
		u := p.trie[pos]
		if unitLabel(u) != uint32(c) {
			return "", false
		}
		pos ^= unitOffset(u)
		if unitHasLeaf(u) {
			if int(pos) >= len(p.trie) {
				return "", false
			}
			off := int(unitValue(p.trie[pos]))
			if off >= len(p.normalized) {
				return "", false
			}
			end := off
			for end < len(p.normalized) && p.normalized[end] != 0 {
				end++
			}
			return string(p.normalized[off:end]), true
		}
	}
	return "", false
}

// normalize follows tokenizers' Precompiled normalizer exactly, quirks
// included: a grapheme cluster shorter than 6 bytes is looked up whole (and
// replaced whole by its shortest matching prefix's replacement); otherwise,
// or without a match, each character is looked up on its own.
func (p *precompiled) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		grapheme := g.Str()
		if len(grapheme) < 6 {
			if rep, ok := p.firstMatch(grapheme); ok {
				b.WriteString(rep)
				continue
			}
		}
		for _, r := range grapheme {
			part := string(r)
			if rep, ok := p.firstMatch(part); ok {
				b.WriteString(rep)
			} else {
				b.WriteString(part)
			}
		}
	}
	return b.String()
}
