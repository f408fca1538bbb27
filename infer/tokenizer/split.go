package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// splitPreTokenizer is tokenizers' Split pre-tokenizer: the text is cut at
// the matches of a pattern and each match is dropped, kept on its own, or
// merged with a neighbour, as behavior says. Empty pieces are dropped.
// spiece.model's user-defined pieces use it ("Isolated"), as SigLIP 2's
// tokenizer.json does for spaces ("MergedWithPrevious").
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
		s.re = regexp.MustCompile(regexp.QuoteMeta(*spec.Pattern.String))
	case spec.Pattern.Regex != nil:
		re, err := regexp.Compile(*spec.Pattern.Regex)
		if err != nil {
			return nil, fmt.Errorf("Split regex %q: %w", *spec.Pattern.Regex, err)
		}
		s.re = re
	default:
		return nil, errors.New("Split has no pattern")
	}
	switch s.behavior {
	case "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous":
	default:
		return nil, fmt.Errorf("Split behavior %q is not supported", s.behavior)
	}
	return s, nil
}

type splitSpan struct {
	start, end int
	match      bool
}

// split follows tokenizers' NormalizedString::split.
func (s splitPreTokenizer) split(text string, _ bool) []string {
	// Matches and the gaps between them, covering the text.
	var spans []splitSpan
	prev := 0
	for _, m := range s.re.FindAllStringIndex(text, -1) {
		if m[0] != prev {
			spans = append(spans, splitSpan{prev, m[0], s.invert})
		}
		spans = append(spans, splitSpan{m[0], m[1], !s.invert})
		prev = m[1]
	}
	if prev != len(text) {
		spans = append(spans, splitSpan{prev, len(text), s.invert})
	}
	var out []splitSpan // match here means "remove"
	switch s.behavior {
	case "Removed":
		out = spans
	case "Isolated":
		for _, sp := range spans {
			out = append(out, splitSpan{sp.start, sp.end, false})
		}
	case "Contiguous":
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, splitSpan{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
	case "MergedWithPrevious":
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, splitSpan{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
	case "MergedWithNext":
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, splitSpan{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	var words []string
	for _, sp := range out {
		if !sp.match && sp.end > sp.start {
			words = append(words, text[sp.start:sp.end])
		}
	}
	return words
}
