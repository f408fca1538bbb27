package tokenizer_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/siglipd/siglipd/infer/tokenizer"
	"github.com/siglipd/siglipd/internal/testenv"
)

// pythonPrepare is what SiglipTokenizer does before SentencePiece:
// canonicalize_text (strip string.punctuation, collapse \s+, strip), then
// do_lower_case's str.lower(). Real Python decides the Unicode questions
// (which characters are whitespace, how İ and final Σ lower-case).
const pythonPrepare = `
import json, re, string, sys
out = []
for t in json.load(sys.stdin):
    t = t.translate(str.maketrans("", "", string.punctuation))
    t = re.sub(r"\s+", " ", t).strip()
    out.append(t.lower())
json.dump(out, sys.stdout)
`

func TestPrepareMatchesPython(t *testing.T) {
	python := testenv.LookPath(t, "python3")
	texts := append([]string{
		"ΟΔΟΣ", "ΣΑΣ Σ", "İİ", "x\x1cy\x1fz", "a\u2028b\u2029c", "\u00a0 nbsp \u3000", "don't-stop!!", "ǅemal", "ᾈ",
	}, corpus...)
	in, _ := json.Marshal(texts)
	cmd := exec.Command(python, "-c", pythonPrepare)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	p := &tokenizer.Pretrained{Canonicalize: true, Lowercase: true}
	for i, text := range texts {
		if got := p.Prepare(text); got != want[i] {
			t.Errorf("Prepare(%q) = %q, Python gives %q", text, got, want[i])
		}
	}
}
