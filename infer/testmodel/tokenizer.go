package testmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tokenizerInfo is what the model graphs need to know of the tokenizer.
type tokenizerInfo struct {
	vocabSize    int
	padID, eosID int
	pieces       map[string]int // piece → id
}

// words are the generated vocabulary's whole-word pieces, most frequent
// first (their Unigram scores fall with rank). They cover the prompts the
// tests and the demo use; anything else splits into letters.
var words = strings.Fields(`
this is a photo of the an in on at and with to for by from it that
car person dog cat bird truck bicycle bus motorcycle package box door garage open closed
window driveway street yard garden road parked walking standing sitting people man woman child
red green blue yellow cyan magenta orange purple white black grey gray brown pink
light dark night day snow rain empty nothing something plane remote
front back left right top bottom inside outside near far big small
`)

// subwords let unknown words split into pieces longer than one letter, so
// the Viterbi search in the tokenizer has real choices to make.
var subwords = strings.Fields(`ing ed er es s ly tion re un th ch sh ou ar or en an in on at it st nd`)

// generatedVocab builds a Unigram vocabulary in SentencePiece's layout:
// <pad>, </s>, <unk> first, then "▁", words, subwords, single characters.
func generatedVocab() [][2]any {
	vocab := [][2]any{{"<pad>", 0.0}, {"</s>", 0.0}, {"<unk>", 0.0}, {"▁", -3.0}}
	seen := map[string]bool{}
	add := func(piece string, score float64) {
		if !seen[piece] { // each piece once: a duplicate would map to its last id
			seen[piece] = true
			vocab = append(vocab, [2]any{piece, score})
		}
	}
	for i, w := range words {
		add("▁"+w, -4.0-0.02*float64(i))
	}
	for i, s := range subwords {
		add(s, -7.0-0.05*float64(i))
		add("▁"+s, -7.5-0.05*float64(i))
	}
	chars := "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'-"
	for i, c := range chars {
		add(string(c), -9.0-0.01*float64(i))
		if i < 36 {
			add("▁"+string(c), -9.5-0.01*float64(i))
		}
	}
	return vocab
}

// generatedTokenizerJSON mirrors the structure of SigLIP's tokenizer.json
// (Xenova export) with an NFKC normalizer in place of SentencePiece's
// precompiled character map, which cannot be generated here.
func generatedTokenizerJSON() map[string]any {
	special := func(id int, content string) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": true, "rstrip": true, "normalized": true, "special": true}
	}
	metaspace := map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}
	return map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{special(1, "</s>"), special(2, "<unk>")},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKC"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " {2,}"}, "content": " "},
		}},
		"pre_tokenizer": metaspace,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair": []any{
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
			},
			"special_tokens": map[string]any{"</s>": map[string]any{"id": "</s>", "ids": []int{1}, "tokens": []string{"</s>"}}},
		},
		"decoder": metaspace,
		"model":   map[string]any{"type": "Unigram", "unk_id": 2, "vocab": generatedVocab(), "byte_fallback": false},
	}
}

// siglipTokenizerConfig is SigLIP's tokenizer_config.json: what Python's
// SiglipTokenizer and transformers.js read for lower-casing, the 64-token
// length and padding with </s>.
func siglipTokenizerConfig() map[string]any {
	tok := func(s string) map[string]any {
		return map[string]any{"content": s, "lstrip": true, "normalized": false, "rstrip": true, "single_word": false, "special": true}
	}
	return map[string]any{
		"added_tokens_decoder":         map[string]any{"1": tok("</s>"), "2": tok("<unk>")},
		"additional_special_tokens":    []string{},
		"clean_up_tokenization_spaces": true,
		"do_lower_case":                true,
		"eos_token":                    "</s>",
		"model_input_names":            []string{"input_ids"},
		"model_max_length":             64,
		"pad_token":                    "</s>",
		"processor_class":              "SiglipProcessor",
		"sp_model_kwargs":              map[string]any{},
		"tokenizer_class":              "SiglipTokenizer",
		"unk_token":                    "<unk>",
	}
}

// writeTokenizer writes tokenizer.json, tokenizer_config.json and
// special_tokens_map.json: the generated ones, or opts.Tokenizer with the
// config files found beside it.
func writeTokenizer(opts Options) (tokenizerInfo, error) {
	dst := filepath.Join(opts.OutDir, "tokenizer.json")
	var raw []byte
	var err error
	if opts.Tokenizer == "" {
		if raw, err = json.MarshalIndent(generatedTokenizerJSON(), "", "  "); err != nil {
			return tokenizerInfo{}, err
		}
	} else if raw, err = os.ReadFile(opts.Tokenizer); err != nil {
		return tokenizerInfo{}, fmt.Errorf("--tokenizer: %w", err)
	}
	info, err := parseVocab(raw)
	if err != nil {
		return tokenizerInfo{}, fmt.Errorf("tokenizer %s: %w", nameOr(opts.Tokenizer, "(generated)"), err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		return tokenizerInfo{}, err
	}
	specialMap := map[string]any{"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}
	copied := false
	if opts.Tokenizer != "" {
		dir := filepath.Dir(opts.Tokenizer)
		for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				if err := os.WriteFile(filepath.Join(opts.OutDir, name), b, 0o644); err != nil {
					return tokenizerInfo{}, err
				}
				copied = true
			}
		}
	}
	if !copied {
		if err := writeJSON(filepath.Join(opts.OutDir, "tokenizer_config.json"), siglipTokenizerConfig()); err != nil {
			return tokenizerInfo{}, err
		}
		if err := writeJSON(filepath.Join(opts.OutDir, "special_tokens_map.json"), specialMap); err != nil {
			return tokenizerInfo{}, err
		}
	}
	return info, nil
}

func nameOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// parseVocab reads the vocabulary size and piece ids of a tokenizer.json
// (Unigram or BPE), counting added tokens that lie beyond the model's vocab.
func parseVocab(raw []byte) (tokenizerInfo, error) {
	var t struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Type  string          `json:"type"`
			Vocab json.RawMessage `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return tokenizerInfo{}, err
	}
	info := tokenizerInfo{pieces: map[string]int{}}
	switch t.Model.Type {
	case "Unigram":
		var vocab [][2]any
		if err := json.Unmarshal(t.Model.Vocab, &vocab); err != nil {
			return info, fmt.Errorf("model.vocab: %w", err)
		}
		for i, v := range vocab {
			if s, ok := v[0].(string); ok {
				info.pieces[s] = i
			}
		}
	case "BPE":
		var vocab map[string]int
		if err := json.Unmarshal(t.Model.Vocab, &vocab); err != nil {
			return info, fmt.Errorf("model.vocab: %w", err)
		}
		info.pieces = vocab
	default:
		return info, fmt.Errorf("model type %q is not supported (want Unigram or BPE)", t.Model.Type)
	}
	for _, a := range t.AddedTokens {
		info.pieces[a.Content] = a.ID
	}
	for _, id := range info.pieces {
		info.vocabSize = max(info.vocabSize, id+1)
	}
	eos, ok := info.pieces["</s>"]
	if !ok {
		if eos, ok = info.pieces["<eos>"]; !ok {
			return info, fmt.Errorf("no </s> or <eos> token")
		}
	}
	info.eosID, info.padID = eos, eos
	return info, nil
}
