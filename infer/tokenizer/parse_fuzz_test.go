package tokenizer

import (
	"encoding/json"
	"testing"
)

// FuzzParse: any bytes given as a tokenizer.json load or fail with an
// error, never a panic — the vocabulary and merges are read by
// jsonScanner, which trusts json.Valid's verdict on the file. The seeds are
// small Unigram and BPE files in the shapes tokenizers writes (merges as
// strings and as pairs, a padding block) and near misses of them.
func FuzzParse(f *testing.F) {
	bpe := map[string]any{
		"version": "1.0", "truncation": map[string]any{"max_length": 8}, "added_tokens": []any{map[string]any{"id": 0, "content": "<pad>", "special": true}},
		"padding":       map[string]any{"strategy": map[string]any{"Fixed": 8}, "pad_id": 0, "pad_token": "<pad>"},
		"normalizer":    map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"Sequence": map[string]any{"id": "A"}}, map[string]any{"SpecialToken": map[string]any{"id": "<eos>"}}},
			"special_tokens": map[string]any{"<eos>": map[string]any{"ids": []int{1}}}},
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
			"vocab":  map[string]int{"<pad>": 0, "<eos>": 1, "<unk>": 2, "a": 3, "b": 4, "ab": 5, "▁": 6, "<0x41>": 7, "\"q\\": 8, "\"q\\a": 9},
			"merges": []any{[]string{"a", "b"}, "\"q\\ a"}},
	}
	uni := map[string]any{"model": map[string]any{"type": "Unigram", "unk_id": 0, "vocab": [][]any{{"<unk>", 0.0}, {"▁a", -1.5}, {"b", -2.0}}},
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}}
	for _, v := range []any{bpe, uni} {
		b, _ := json.Marshal(v)
		if _, err := Parse(b); err != nil {
			f.Fatalf("seed does not load: %v", err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{`{}`, `{"model":[]}`, `{"model":{"type":"BPE","merges":[["a"]],"vocab":{}}}`, `{"model":{"type":"BPE","vocab":{"a":1e400}}}`,
		`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b c"]}}`, `[1,2]`, `"x"`, `{"model":{"type":"BPE","vocab":{"\ud800":0}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := Parse(raw)
		if err == nil {
			tok.Encode("ab a\"q\\a", true) // a loaded tokenizer encodes
		}
	})
}
