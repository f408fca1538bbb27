package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/testmodel"
	"github.com/siglipd/siglipd/infer/tokenizer"
	"github.com/siglipd/siglipd/internal/testenv"
)

// corpus is label text as users write it: case, punctuation, digits,
// unicode of many scripts, near-empty strings, and text over 64 tokens.
var corpus = []string{
	"a car", "a car in the driveway", "garage door open", "A Photo of a CAT!!", "person",
	"Person walking a DOG.", "two people", "3 cars", "12:30 delivery", "package at the front door",
	"It's raining", "don't", "e-mail", "state-of-the-art", "(parenthesised)",
	"[brackets] and {braces}", "50% off", "$100 bill", "user@example.com", "C++",
	"#hashtag", "a/b test", "under_score", "~tilde~", `quote "double"`,
	`back\slash`, "tab\tseparated", "new\nline", "  leading and trailing  ", "multiple   spaces",
	"ALL CAPS LABEL", "MiXeD CaSe", "", " ", "!",
	"...", "a", "x", "café", "cafe\u0301 decomposed",
	"naïve façade", "straße", "İstanbul", "ΟΔΟΣ ΣΟΦΊΑΣ", "Ελληνικά",
	"ＦＵＬＬＷＩＤＴＨ", "ﬁsh ﬂag ligatures", "①②③", "½ cup", "™ and ©",
	"no\u00a0break", "ideographic\u3000space", "汽车", "猫と犬", "자동차",
	"🚗🚲", "👨\u200d👩\u200d👧 family", "Ünïcödé ÄÖÜ", "emoji ❤️ heart", "arabic سيارة",
	"hebrew מכונית", "thai รถยนต์", "hindi कार",
	strings.Repeat("a very long description of a busy street scene with many cars ", 8),
	strings.Repeat("ÜBER-lange Beschreibung; ", 12),
}

type tokenizeResponse struct {
	Raw    [][]int `json:"raw"`
	Padded [][]int `json:"padded"`
}

// checkParity compares our ids with transformers.js's for every corpus
// string, bare and inside the pipeline's template, on canonicalized text
// (transformers.js applies only the tokenizer.json part; Prepare is
// Python's SiglipTokenizer clean-up, tested on its own below).
func checkParity(t *testing.T, dir string) {
	t.Helper()
	p, err := tokenizer.LoadPretrained(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkParityOf(t, p, dir, corpus)
}

// checkParityOf is checkParity with a loaded tokenizer and a corpus. The
// length is given to transformers.js explicitly: it pads to
// model_max_length, which SigLIP 2's files leave at 1e30.
func checkParityOf(t *testing.T, p *tokenizer.Pretrained, dir string, corpus []string) {
	t.Helper()
	var texts []string
	for _, s := range corpus {
		texts = append(texts, p.Prepare(s), p.Prepare("This is a photo of "+s+"."))
	}
	var ref tokenizeResponse
	testenv.Reference(t, map[string]any{"op": "tokenize", "model": dir, "texts": texts, "max_length": p.MaxLength}, &ref)
	long := 0
	for i, text := range texts {
		got := p.Encode(text, true)
		if !slices.Equal(got, ref.Raw[i]) {
			t.Errorf("%q: ids\n ours %v\n  js  %v", text, got, ref.Raw[i])
			continue
		}
		padded := p.EncodePadded(text) // Prepare is idempotent on prepared text
		want := ref.Padded[i]
		if len(got) > p.MaxLength {
			// transformers.js truncates after adding </s>, so its 64th id is
			// a text token; Python's tokenizers truncate the text and keep
			// </s>, which is what the text tower was trained with.
			long++
			want = append(slices.Clone(want[:p.MaxLength-1]), got[len(got)-1])
		}
		if !slices.Equal(int64s(padded), want) {
			t.Errorf("%q: padded ids\n ours %v\n want %v", text, padded, want)
		}
	}
	if long == 0 {
		t.Error("the corpus has no text over the length limit")
	}
	t.Logf("%d texts: identical ids (%d longer than %d tokens)", len(texts), long, p.MaxLength)
}

func int64s(ids []int64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func TestParityRealSigLIPTokenizer(t *testing.T) {
	testenv.Integration(t)
	checkParity(t, testenv.SigLIPReferenceDir(t))
}

func TestParityGeneratedTokenizer(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	checkParity(t, dir)
}

// TestParityBPEByteFallback checks the BPE model with byte fallback that
// SigLIP 2's Gemma tokenizer uses, on a vocabulary trained here.
func TestParityBPEByteFallback(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	writeGemmaStyleTokenizer(t, dir)
	p, err := tokenizer.LoadPretrained(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Canonicalize || p.Lowercase {
		t.Fatalf("a Gemma tokenizer must not get SiglipTokenizer's clean-up")
	}
	var ref tokenizeResponse
	testenv.Reference(t, map[string]any{"op": "tokenize", "model": dir, "texts": corpus}, &ref)
	fallbacks := 0
	for i, text := range corpus {
		got := p.Encode(text, true)
		if !slices.Equal(got, ref.Raw[i]) {
			t.Errorf("%q: ids\n ours %v\n  js  %v", text, got, ref.Raw[i])
		}
		for _, id := range got {
			if id >= 3 && id < 3+256 {
				fallbacks++
			}
		}
	}
	if fallbacks == 0 {
		t.Error("no byte-fallback tokens: the corpus did not exercise byte fallback")
	}
}

// writeGemmaStyleTokenizer trains a small BPE vocabulary (200 merges over
// the corpus's ASCII letters) and writes it in the Gemma tokenizer.json
// form: Prepend "▁" and spaces → "▁", no pre-tokenizer, byte fallback.
func writeGemmaStyleTokenizer(t *testing.T, dir string) {
	vocab := map[string]int{"<pad>": 0, "<eos>": 1, "<unk>": 2}
	for b := 0; b < 256; b++ {
		vocab[fmt.Sprintf("<0x%02X>", b)] = len(vocab)
	}
	for _, c := range "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!'-" {
		vocab[string(c)] = len(vocab)
	}
	var words [][]string
	for _, s := range corpus {
		for _, w := range strings.Fields(s) {
			var syms []string
			for _, c := range "▁" + w {
				if _, ok := vocab[string(c)]; !ok {
					syms = nil
					break
				}
				syms = append(syms, string(c))
			}
			if syms != nil {
				words = append(words, syms)
			}
		}
	}
	var merges [][2]string
	for len(merges) < 200 {
		counts := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				counts[[2]string{w[i], w[i+1]}]++
			}
		}
		if len(counts) == 0 {
			break
		}
		pairs := make([][2]string, 0, len(counts))
		for p := range counts {
			pairs = append(pairs, p)
		}
		sort.Slice(pairs, func(i, j int) bool {
			if counts[pairs[i]] != counts[pairs[j]] {
				return counts[pairs[i]] > counts[pairs[j]]
			}
			return pairs[i][0]+" "+pairs[i][1] < pairs[j][0]+" "+pairs[j][1]
		})
		best := pairs[0]
		merges = append(merges, best)
		if _, ok := vocab[best[0]+best[1]]; !ok {
			vocab[best[0]+best[1]] = len(vocab)
		}
		for k, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
				} else {
					out = append(out, w[i])
				}
			}
			words[k] = out
		}
	}
	tok := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
			map[string]any{"id": 1, "content": "<eos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
			map[string]any{"id": 2, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "<eos>", "type_id": 0}}},
			"pair":           []any{},
			"special_tokens": map[string]any{"<eos>": map[string]any{"id": "<eos>", "ids": []int{1}, "tokens": []string{"<eos>"}}},
		},
		"decoder": nil,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
	cfg := map[string]any{"tokenizer_class": "GemmaTokenizer", "model_max_length": 64, "pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}
	for name, v := range map[string]any{"tokenizer.json": tok, "tokenizer_config.json": cfg} {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
