package tokenizer

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestSplitPreTokenizer: the Split pre-tokenizer cuts text into the words
// HF tokenizers cuts it into, for each behavior, String and Regex
// patterns, inverted or not. (SigLIP 2's tokenizer.json has Split on " ",
// MergedWithPrevious; the rest keeps a later tokenizer.json from being
// silently cut otherwise.)
func TestSplitPreTokenizer(t *testing.T) {
	testenv.Integration(t)
	texts := []string{"a photo of a cat", "  leading and  double  spaces ", "", " ", "x", "a\tb\nc  d",
		"ab ab  abab", "café ▁ déjà-vu", "2,000 cats; 3 dogs!"}
	var specs []map[string]any
	for _, behavior := range []string{"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"} {
		for _, pattern := range []map[string]any{{"String": " "}, {"String": "ab"}, {"String": ""}, {"Regex": `\s+`}, {"Regex": `[0-9]+|[,;!]`}} {
			for _, invert := range []bool{false, true} {
				specs = append(specs, map[string]any{"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert})
			}
		}
	}
	var py struct {
		Words [][][]string `json:"words"`
	}
	testenv.TorchJSON(t, "siglip2.py", filepath.Join(t.TempDir(), "req.json"), map[string]any{"op": "pretokenize", "pre_tokenizers": specs, "texts": texts}, &py)
	for i, spec := range specs {
		raw, _ := json.Marshal(spec)
		pre, err := parsePreTokenizer(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		for j, text := range texts {
			got := pre.split(text, true)
			want := py.Words[i][j]
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s on %q:\n ours       %q\n tokenizers %q", raw, text, got, want)
			}
		}
	}
	t.Logf("%d Split pre-tokenizers × %d texts: identical words", len(specs), len(texts))
}

// TestSplitErrors: what siglipd cannot split as tokenizers would is a load
// error naming it.
func TestSplitErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{`{"type":"Split","pattern":{"Regex":"(?=a)"},"behavior":"Isolated","invert":false}`, `Split regex "(?=a)" is not supported by Go's regexp`},
		{`{"type":"Split","pattern":{"String":" "},"behavior":"Sideways","invert":false}`, `Split behavior "Sideways" is not supported`},
		{`{"type":"Split","behavior":"Isolated"}`, `Split has no String or Regex pattern`},
	}
	for _, tt := range tests {
		_, err := parsePreTokenizer(json.RawMessage(tt.spec))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.spec, err, tt.want)
		}
	}
}
