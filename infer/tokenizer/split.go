package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// splitPreTokenizer is tokenizers' Split pre-tokenizer: it cuts text at the
// matches of a pattern and keeps, drops or attaches each match as behavior
// says. SigLIP 2's Gemma tokenizer.json has Split on " " after a normalizer
// that already turned every space into "▁" — a no-op there, but a load
// error would refuse the model, and a half-supported one would cut words
// elsewhere differently from tokenizers.
type splitPreTokenizer struct {
	re       *regexp.Regexp
	behavior string
	invert   bool
}

func parseSplit(raw json.RawMessage) (preTokenizer, error) {
	var spec struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Behavior string `json:"behavior"`
		Invert   bool   `json:"invert"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	s := splitPreTokenizer{behavior: spec.Behavior, invert: spec.Invert}
	switch {
	case spec.Pattern.String != nil:
		// tokenizers turns a String pattern into an escaped regex too, so an
		// empty one matches between every two characters.
		s.re = regexp.MustCompile(regexp.QuoteMeta(*spec.Pattern.String))
	case spec.Pattern.Regex != nil:
		// Go's RE2 lacks Oniguruma's look-around and back-references; such
		// a pattern fails here, at load, rather than splitting differently.
		// (One difference remains: RE2's \s is ASCII whitespace only.)
		re, err := regexp.Compile(*spec.Pattern.Regex)
		if err != nil {
			return nil, fmt.Errorf("Split regex %q is not supported by Go's regexp: %w", *spec.Pattern.Regex, err)
		}
		s.re = re
	default:
		return nil, fmt.Errorf("Split has no String or Regex pattern")
	}
	switch s.behavior {
	case "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous":
	default:
		return nil, fmt.Errorf("Split behavior %q is not supported (want Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)", s.behavior)
	}
	return s, nil
}

// span is a byte range of the text and whether it is a pattern match.
type span struct {
	start, end int
	match      bool
}

// matches is tokenizers' Pattern::find_matches: the whole text as
// alternating non-match and match spans.
func (s splitPreTokenizer) matches(text string) []span {
	if text == "" {
		return []span{{0, 0, false}}
	}
	var out []span
	prev := 0
	for _, l := range s.re.FindAllStringIndex(text, -1) {
		if prev != l[0] {
			out = append(out, span{prev, l[0], false})
		}
		out = append(out, span{l[0], l[1], true})
		prev = l[1]
	}
	if prev != len(text) {
		out = append(out, span{prev, len(text), false})
	}
	if s.invert {
		for i := range out {
			out[i].match = !out[i].match
		}
	}
	return out
}

// split is tokenizers' NormalizedString::split with the pre-tokenizer's
// behavior; empty pieces are dropped, as tokenizers drops them.
func (s splitPreTokenizer) split(text string, _ bool) []string {
	spans := s.matches(text)
	type piece struct {
		start, end int
		remove     bool
	}
	var pieces []piece
	switch s.behavior {
	case "Removed":
		for _, sp := range spans {
			pieces = append(pieces, piece{sp.start, sp.end, sp.match})
		}
	case "Isolated":
		for _, sp := range spans {
			pieces = append(pieces, piece{sp.start, sp.end, false})
		}
	case "Contiguous", "MergedWithPrevious":
		prevMatch := false
		for _, sp := range spans {
			// Contiguous joins a span to the previous one when both match or
			// both do not; MergedWithPrevious joins a match to what precedes.
			join := sp.match == prevMatch
			if s.behavior == "MergedWithPrevious" {
				join = sp.match && !prevMatch
			}
			if join && len(pieces) > 0 {
				pieces[len(pieces)-1].end = sp.end
			} else {
				pieces = append(pieces, piece{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
	case "MergedWithNext":
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(pieces) > 0 {
				pieces[len(pieces)-1].start = sp.start
			} else {
				pieces = append(pieces, piece{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(pieces)-1; i < j; i, j = i+1, j-1 {
			pieces[i], pieces[j] = pieces[j], pieces[i]
		}
	}
	var words []string
	for _, p := range pieces {
		if !p.remove && p.end > p.start {
			words = append(words, text[p.start:p.end])
		}
	}
	return words
}
