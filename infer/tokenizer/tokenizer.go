// Package tokenizer encodes text the way a Hugging Face tokenizer.json says
// to, for the tokenizers SigLIP models ship with:
//
//   - SigLIP (T5-style SentencePiece): Precompiled character map normalizer,
//     Metaspace "▁" pre-tokenizer, Unigram model, "</s>" appended;
//   - SigLIP 2 (Gemma): Prepend/Replace normalizers, Split pre-tokenizer,
//     BPE with byte fallback, "<eos>" appended.
//
// The algorithms follow the Rust `tokenizers` library (the reference
// implementation of the format). Pretrained adds what the config files
// beside tokenizer.json say (pad token, length) and what Python's
// SiglipTokenizer does on top of tokenizer.json (lower-casing, removing
// punctuation, padding to 64) — see siglip.go.
//
// A SentencePiece spiece.model (how Google's SigLIP 1 repositories ship the
// tokenizer) is turned into the equivalent tokenizer.json first
// (sentencepiece.go), so it runs through the same pipeline.
//
// A loaded Tokenizer is read-only: safe for concurrent use. Loading is the
// costly part (Gemma's tokenizer.json is 34 MB; jsonscan.go).
//
// Unsupported components (a BERT normalizer, a ByteLevel pre-tokenizer, ...)
// are load errors naming the component, never silently different output.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// Tokenizer is a loaded tokenizer.json.
type Tokenizer struct {
	normalizer normalizer   // may be nil
	pretok     preTokenizer // may be nil: the whole text is one word
	model      model
	added      []addedToken
	template   []templatePiece // post_processor "single"; nil adds nothing
	vocab      map[string]int
	vocabSize  int
	padding    *padding // tokenizer.json's own "padding", if any
	truncateAt int      // tokenizer.json's "truncation" max_length; 0: none
}

// padding is tokenizer.json's "padding" block. Gemma's (SigLIP 2) pads to a
// fixed 64 with <pad>; Python's fast tokenizer replaces it on every call
// and transformers.js ignores it, but it is the one place in those files
// that says 64 — tokenizer_config.json's model_max_length is 1e30.
type padding struct {
	fixed int // strategy {"Fixed": n}; 0 for BatchLongest
	id    int
	token string
}

type addedToken struct {
	id                         int
	content                    string
	special                    bool
	normalized, lstrip, rstrip bool
}

// templatePiece is one element of TemplateProcessing's "single": the
// sequence itself (id < 0) or a special token id.
type templatePiece struct{ id int }

type normalizer interface{ normalize(string) string }

type preTokenizer interface {
	// split cuts text into words; first is whether text is the first
	// section of the input (Metaspace's prepend_scheme "first").
	split(text string, first bool) []string
}

type model interface {
	// encode turns one pre-tokenized word into ids.
	encode(word string) []int
}

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse builds a Tokenizer from tokenizer.json bytes.
func Parse(raw []byte) (*Tokenizer, error) {
	var spec struct {
		AddedTokens []struct {
			ID         int    `json:"id"`
			Content    string `json:"content"`
			Special    bool   `json:"special"`
			Normalized bool   `json:"normalized"`
			Lstrip     bool   `json:"lstrip"`
			Rstrip     bool   `json:"rstrip"`
		} `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Padding       *struct {
			Strategy json.RawMessage `json:"strategy"`
			PadID    int             `json:"pad_id"`
			PadToken string          `json:"pad_token"`
		} `json:"padding"`
		Truncation *struct {
			MaxLength int `json:"max_length"`
		} `json:"truncation"`
		Model json.RawMessage `json:"-"`
	}
	// The model (for Gemma 34 MB of vocabulary and merges) is read by
	// jsonScanner, without a copy; everything else by encoding/json, after
	// json.Valid has vouched for the whole file.
	if !json.Valid(raw) {
		var v any
		return nil, fmt.Errorf("not a tokenizer.json: %w", json.Unmarshal(raw, &v))
	}
	sc := &jsonScanner{b: raw}
	if sc.peek() != '{' {
		return nil, errors.New("not a tokenizer.json: not a JSON object")
	}
	err := sc.object(func(key []byte) error {
		v, err := sc.skip()
		if err != nil {
			return err
		}
		var dst any
		switch string(key) {
		case "model":
			spec.Model = v
		case "added_tokens":
			dst = &spec.AddedTokens
		case "normalizer":
			spec.Normalizer = v
		case "pre_tokenizer":
			spec.PreTokenizer = v
		case "post_processor":
			spec.PostProcessor = v
		case "padding":
			dst = &spec.Padding
		case "truncation":
			dst = &spec.Truncation
		}
		if dst != nil {
			if err := json.Unmarshal(v, dst); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if spec.Model == nil {
		return nil, errors.New("not a tokenizer.json: it has no \"model\"")
	}
	t := &Tokenizer{}
	if t.normalizer, err = parseNormalizer(spec.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if t.pretok, err = parsePreTokenizer(spec.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if t.model, t.vocab, err = parseModel(spec.Model); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	for _, a := range spec.AddedTokens {
		t.added = append(t.added, addedToken{a.ID, a.Content, a.Special, a.Normalized, a.Lstrip, a.Rstrip})
		t.vocab[a.Content] = a.ID
	}
	for _, id := range t.vocab {
		t.vocabSize = max(t.vocabSize, id+1)
	}
	if t.template, err = parseTemplate(spec.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	if p := spec.Padding; p != nil {
		t.padding = &padding{id: p.PadID, token: p.PadToken}
		var fixed struct {
			Fixed int `json:"Fixed"`
		}
		if json.Unmarshal(p.Strategy, &fixed) == nil {
			t.padding.fixed = fixed.Fixed
		}
	}
	if spec.Truncation != nil {
		t.truncateAt = spec.Truncation.MaxLength
	}
	return t, nil
}

// VocabSize is one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenID returns the id of a piece or added token.
func (t *Tokenizer) TokenID(piece string) (int, bool) {
	id, ok := t.vocab[piece]
	return id, ok
}

// SpecialCount is how many ids the post-processor adds around a sequence.
func (t *Tokenizer) SpecialCount() int {
	n := 0
	for _, p := range t.template {
		if p.id >= 0 {
			n++
		}
	}
	return n
}

// Encode tokenizes text through the tokenizer.json pipeline: added tokens,
// normalizer, pre-tokenizer, model and, if addSpecial, the post-processor's
// special tokens. It neither truncates nor pads.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	ids := t.encodeText(text)
	if addSpecial {
		ids = t.applyTemplate(ids)
	}
	return ids
}

func (t *Tokenizer) applyTemplate(ids []int) []int {
	if t.template == nil {
		return ids
	}
	out := make([]int, 0, len(ids)+len(t.template))
	for _, p := range t.template {
		if p.id < 0 {
			out = append(out, ids...)
		} else {
			out = append(out, p.id)
		}
	}
	return out
}

// segment is a piece of input text that is either an added token or text
// for the normal pipeline.
type segment struct {
	text  string
	token *addedToken
}

func (t *Tokenizer) encodeText(text string) []int {
	var ids []int
	// As in tokenizers' AddedVocabulary: tokens that match the raw text
	// (normalized: false) are split out first; the rest is normalized, then
	// split on the tokens that match normalized text.
	for i, seg := range t.splitAdded(text, false) {
		if seg.token != nil {
			ids = append(ids, seg.token.id)
			continue
		}
		norm := seg.text
		if t.normalizer != nil {
			norm = t.normalizer.normalize(norm)
		}
		for _, inner := range t.splitAdded(norm, true) {
			if inner.token != nil {
				ids = append(ids, inner.token.id)
				continue
			}
			if inner.text == "" {
				continue
			}
			words := []string{inner.text}
			if t.pretok != nil {
				words = t.pretok.split(inner.text, i == 0)
			}
			for _, w := range words {
				if w != "" {
					ids = append(ids, t.model.encode(w)...)
				}
			}
		}
	}
	return ids
}

// splitAdded cuts text at occurrences of added tokens whose "normalized"
// flag equals normalized, longest match first, honouring lstrip/rstrip
// (the token swallows whitespace on that side).
func (t *Tokenizer) splitAdded(text string, normalized bool) []segment {
	var candidates []*addedToken
	for i := range t.added {
		if t.added[i].normalized == normalized && t.added[i].content != "" {
			candidates = append(candidates, &t.added[i])
		}
	}
	if len(candidates) == 0 {
		return []segment{{text: text}}
	}
	var segs []segment
	start := 0
	for i := 0; i < len(text); {
		var best *addedToken
		for _, c := range candidates {
			if strings.HasPrefix(text[i:], c.content) && (best == nil || len(c.content) > len(best.content)) {
				best = c
			}
		}
		if best == nil {
			i++
			continue
		}
		before := text[start:i]
		if best.lstrip {
			before = strings.TrimRightFunc(before, unicode.IsSpace)
		}
		segs = append(segs, segment{text: before}, segment{token: best})
		i += len(best.content)
		if best.rstrip {
			for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
				i++
			}
		}
		start = i
	}
	return append(segs, segment{text: text[start:]})
}

func parseTemplate(raw json.RawMessage) ([]templatePiece, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var spec struct {
		Type   string `json:"type"`
		Single []struct {
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	if spec.Type != "TemplateProcessing" {
		return nil, fmt.Errorf("type %q is not supported (want TemplateProcessing)", spec.Type)
	}
	var out []templatePiece
	for _, p := range spec.Single {
		switch {
		case p.Sequence != nil:
			out = append(out, templatePiece{id: -1})
		case p.SpecialToken != nil:
			st, ok := spec.SpecialTokens[p.SpecialToken.ID]
			if !ok || len(st.IDs) != 1 {
				return nil, fmt.Errorf("special token %q has no single id", p.SpecialToken.ID)
			}
			out = append(out, templatePiece{id: st.IDs[0]})
		default:
			return nil, errors.New("template piece is neither Sequence nor SpecialToken")
		}
	}
	return out, nil
}

func parseModel(raw json.RawMessage) (model, map[string]int, error) {
	// The type is found by scanning keys (tokenizers writes it first), not by
	// decoding the whole object, which for Gemma is 34 MB of vocabulary.
	var typ string
	sc := &jsonScanner{b: raw}
	errFound := errors.New("found")
	err := sc.object(func(key []byte) error {
		v, err := sc.skip()
		if err != nil || string(key) != "type" {
			return err
		}
		if err := json.Unmarshal(v, &typ); err != nil {
			return fmt.Errorf("type: %w", err)
		}
		return errFound
	})
	if err != nil && err != errFound {
		return nil, nil, err
	}
	switch typ {
	case "Unigram":
		return parseUnigram(raw)
	case "BPE":
		return parseBPE(raw)
	}
	return nil, nil, fmt.Errorf("type %q is not supported (want Unigram or BPE)", typ)
}
