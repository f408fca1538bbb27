package tokenizer

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// tokenizersSplit runs HF tokenizers' Split pre-tokenizer: for each case,
// the pieces of each text.
const tokenizersSplit = `
import json, sys
from tokenizers import Regex, pre_tokenizers
out = []
for c in json.load(sys.stdin):
    pattern = Regex(c["regex"]) if c["regex"] else c["string"]
    split = pre_tokenizers.Split(pattern, behavior=c["behavior"], invert=c["invert"])
    out.append([[w for w, _ in split.pre_tokenize_str(t)] for t in c["texts"]])
json.dump(out, sys.stdout)
`

func TestSplitMatchesTokenizers(t *testing.T) {
	python := testenv.TorchPython(t)
	texts := []string{"", " ", "a", "  a  b ", "a b  c", "▁x▁▁y▁", "frontdoor a frontdoorfrontdoor", "ab"}
	type splitCase struct {
		String   string   `json:"string"`
		Regex    string   `json:"regex"`
		Behavior string   `json:"behavior"`
		Invert   bool     `json:"invert"`
		Texts    []string `json:"texts"`
	}
	var cases []splitCase
	for _, b := range []string{"removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"} {
		for _, invert := range []bool{false, true} {
			cases = append(cases,
				splitCase{String: " ", Behavior: b, Invert: invert, Texts: texts},
				splitCase{Regex: "▁+|frontdoor", Behavior: b, Invert: invert, Texts: texts})
		}
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(python, "-c", tokenizersSplit)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tokenizers: %v", err)
	}
	var want [][][]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	// tokenizer.json spells the behaviours in CamelCase.
	names := map[string]string{"removed": "Removed", "isolated": "Isolated", "merged_with_previous": "MergedWithPrevious",
		"merged_with_next": "MergedWithNext", "contiguous": "Contiguous"}
	n := 0
	for i, c := range cases {
		pattern := map[string]string{"String": c.String}
		if c.Regex != "" {
			pattern = map[string]string{"Regex": c.Regex}
		}
		raw, _ := json.Marshal(map[string]any{"type": "Split", "pattern": pattern, "behavior": names[c.Behavior], "invert": c.Invert})
		p, err := parsePreTokenizer(raw)
		if err != nil {
			t.Fatal(err)
		}
		for j, text := range c.Texts {
			got := p.split(text, true)
			n++
			if !slices.Equal(got, want[i][j]) && !(len(got) == 0 && len(want[i][j]) == 0) {
				t.Errorf("%s: %q → %q, tokenizers %q", raw, text, got, want[i][j])
			}
		}
	}
	t.Logf("%d splits compared", n)
}
