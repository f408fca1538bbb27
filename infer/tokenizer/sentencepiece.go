package tokenizer

// Google's SigLIP 1 repositories (google/siglip-base-patch16-224,
// google/siglip-so400m-patch14-384, ...) ship their tokenizer as
// spiece.model, a SentencePiece ModelProto, with tokenizer_config.json
// naming SiglipTokenizer, and may have no tokenizer.json. This file reads
// that protobuf by hand and writes the tokenizer.json that encodes the same
// way, so siglipd needs neither Python nor the sentencepiece library:
//
//   - normalizer, pre-tokenizer and model follow transformers'
//     SpmConverter.build_tokenizer_from_spm_proto, whose output encodes like
//     SentencePieceProcessor.encode (precompiled character map, SentencePiece's
//     whitespace rules, the dummy prefix, user-defined pieces kept whole);
//   - the post-processor appends </s> as SiglipTokenizer does;
//   - control pieces and the unknown piece are special added tokens.
//
// Only unigram models are read: SigLIP 1's is one. A BPE model (SigLIP 2's
// Gemma tokenizer.model) is an error that points at tokenizer.json.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits on what a spiece.model may hold. Real ones are far below them (a
// SigLIP spiece.model is under 1 MB with 32,000 pieces of at most 16
// characters; SentencePiece's trainer caps pieces at 512 bytes); the limits
// keep a hostile file from costing unbounded memory, and maxSPPieceBytes
// bounds the Unigram lattice's work per input byte.
const (
	maxSPFileBytes  = 32 << 20
	maxSPPieces     = 1 << 20
	maxSPPieceBytes = 512
)

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spNormal      = 1
	spUnknown     = 2
	spControl     = 3
	spUserDefined = 4
	spUnused      = 5
	spByte        = 6
)

var spTypeNames = map[int]string{spNormal: "NORMAL", spUnknown: "UNKNOWN", spControl: "CONTROL",
	spUserDefined: "USER_DEFINED", spUnused: "UNUSED", spByte: "BYTE"}

type spPiece struct {
	piece string
	score float32
	typ   int
}

// spModel is the part of a SentencePiece ModelProto that encoding needs.
// Fields absent from the file keep the proto's declared defaults.
type spModel struct {
	pieces []spPiece
	// trainer_spec
	modelType               int // 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
	byteFallback            bool
	treatWhitespaceAsSuffix bool
	unkID                   int
	// normalizer_spec
	charsmap               []byte
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
}

var spModelTypes = map[int]string{1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"}

// parseSentencePiece decodes a ModelProto and checks what encoding relies
// on; errors say which field is wrong.
func parseSentencePiece(raw []byte) (*spModel, error) {
	m := &spModel{modelType: 1, unkID: 0, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
	err := walkFields(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType: // ModelProto.pieces
			if len(m.pieces) >= maxSPPieces {
				return fmt.Errorf("more than %d pieces", maxSPPieces)
			}
			p, err := parseSPPiece(b)
			if err != nil {
				return fmt.Errorf("pieces[%d]: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case num == 2 && typ == protowire.BytesType: // trainer_spec
			if err := m.parseTrainerSpec(b); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case num == 3 && typ == protowire.BytesType: // normalizer_spec
			if err := m.parseNormalizerSpec(b); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, m.check()
}

func parseSPPiece(raw []byte) (spPiece, error) {
	p := spPiece{typ: spNormal}
	err := walkFields(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			p.piece = string(b)
		case num == 2 && typ == protowire.Fixed32Type:
			p.score = math.Float32frombits(uint32(v))
		case num == 3 && typ == protowire.VarintType:
			p.typ = int(int32(v))
		}
		return nil
	})
	return p, err
}

// parseTrainerSpec reads the training settings that change encoding. The
// end-of-sequence token comes from tokenizer_config.json, as in
// SiglipTokenizer, not from eos_id.
func (m *spModel) parseTrainerSpec(raw []byte) error {
	return walkFields(raw, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
		if typ != protowire.VarintType {
			return nil
		}
		switch num {
		case 3:
			m.modelType = int(int32(v))
		case 24:
			m.treatWhitespaceAsSuffix = v != 0
		case 35:
			m.byteFallback = v != 0
		case 40:
			m.unkID = int(int32(v)) // int32: -1 arrives as a 10-byte varint
		}
		return nil
	})
}

func (m *spModel) parseNormalizerSpec(raw []byte) error {
	return walkFields(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 2 && typ == protowire.BytesType: // the rule (name) compiled; encoding needs only this
			m.charsmap = b
		case num == 3 && typ == protowire.VarintType:
			m.addDummyPrefix = v != 0
		case num == 4 && typ == protowire.VarintType:
			m.removeExtraWhitespaces = v != 0
		case num == 5 && typ == protowire.VarintType:
			m.escapeWhitespaces = v != 0
		}
		return nil
	})
}

// walkFields calls fn for each field of a message: the value of a varint
// or fixed field, the payload of a length-delimited one. Groups and
// malformed fields are errors.
func walkFields(b []byte, fn func(protowire.Number, protowire.Type, uint64, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var payload []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			payload, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w (truncated file?)", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, payload); err != nil {
			return err
		}
	}
	return nil
}

// check rejects what SentencePiece itself would refuse to load, and what
// siglipd does not implement.
func (m *spModel) check() error {
	if m.modelType != 1 {
		name := spModelTypes[m.modelType]
		if name == "" {
			name = fmt.Sprint(m.modelType)
		}
		return fmt.Errorf("trainer_spec.model_type is %s; siglipd reads only UNIGRAM SentencePiece models (SigLIP 1's "+
			"spiece.model); for other tokenizers (SigLIP 2's Gemma BPE) use the repository's tokenizer.json", name)
	}
	if m.treatWhitespaceAsSuffix {
		return errors.New("trainer_spec.treat_whitespace_as_suffix is set; siglipd (like transformers' converter) " +
			"supports only the usual whitespace prefix")
	}
	if len(m.pieces) == 0 {
		return errors.New("no pieces: not a SentencePiece model")
	}
	seen := make(map[string]int, len(m.pieces))
	for i, p := range m.pieces {
		if spTypeNames[p.typ] == "" {
			return fmt.Errorf("pieces[%d] %q: unknown type %d", i, p.piece, p.typ)
		}
		if p.piece == "" {
			return fmt.Errorf("pieces[%d] is empty", i)
		}
		if len(p.piece) > maxSPPieceBytes {
			return fmt.Errorf("pieces[%d] is %d bytes long, over the %d SentencePiece allows", i, len(p.piece), maxSPPieceBytes)
		}
		if !utf8.ValidString(p.piece) {
			return fmt.Errorf("pieces[%d] %q is not valid UTF-8", i, p.piece)
		}
		if math.IsNaN(float64(p.score)) || math.IsInf(float64(p.score), 0) {
			return fmt.Errorf("pieces[%d] %q: score %v is not a finite number", i, p.piece, p.score)
		}
		if j, dup := seen[p.piece]; dup {
			return fmt.Errorf("pieces[%d] %q is also pieces[%d]", i, p.piece, j)
		}
		seen[p.piece] = i
	}
	if m.unkID < 0 || m.unkID >= len(m.pieces) || m.pieces[m.unkID].typ != spUnknown {
		return fmt.Errorf("trainer_spec.unk_id %d is not a piece of type UNKNOWN (%d pieces)", m.unkID, len(m.pieces))
	}
	for i, p := range m.pieces {
		if p.typ == spUnknown && i != m.unkID {
			return fmt.Errorf("pieces[%d] %q is a second UNKNOWN piece (unk_id is %d)", i, p.piece, m.unkID)
		}
	}
	if _, err := parsePrecompiled(base64.StdEncoding.EncodeToString(m.charsmap)); len(m.charsmap) > 0 && err != nil {
		return fmt.Errorf("normalizer_spec: %w", err)
	}
	return nil
}

// SentencePieceToJSON reads a SentencePiece spiece.model and returns the
// tokenizer.json that encodes like it, with SiglipTokenizer's "</s>"
// appended. configPath (tokenizer_config.json, may be "") supplies the
// end-of-sequence token and the strip flags of the special tokens; without
// it SiglipTokenizer's defaults apply. The result loads with Parse and
// LoadPretrained, with HF tokenizers and with transformers.js.
func SentencePieceToJSON(spiecePath, configPath string) ([]byte, error) {
	m, err := readSentencePiece(spiecePath)
	if err != nil {
		return nil, err
	}
	cfg, err := readSPConfig(configPath)
	if err != nil {
		return nil, err
	}
	out, err := m.tokenizerJSON(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spiecePath, err)
	}
	return out, nil
}

// FromSentencePiece is LoadPretrained for a folder with spiece.model and no
// tokenizer.json: the tokenizer SentencePieceToJSON describes, used as
// tokenizer_config.json says (SiglipTokenizer's defaults when configPath
// is "": canonicalize, lower-case, pad with </s> to 64).
func FromSentencePiece(spiecePath, configPath string) (*Pretrained, error) {
	raw, err := SentencePieceToJSON(spiecePath, configPath)
	if err != nil {
		return nil, err
	}
	tok, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: the tokenizer written from it does not load: %w", spiecePath, err)
	}
	p, err := withConfig(tok, spiecePath, configPath)
	if err != nil {
		return nil, err
	}
	if configPath == "" {
		p.Canonicalize, p.Lowercase = true, true
	}
	return p, nil
}

func readSentencePiece(path string) (*spModel, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSPFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(raw) > maxSPFileBytes {
		return nil, fmt.Errorf("%s: over %d MiB, far larger than any SentencePiece model: not a spiece.model?", path, maxSPFileBytes>>20)
	}
	m, err := parseSentencePiece(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: not a usable SentencePiece model: %w", path, err)
	}
	return m, nil
}

// spConfig is what tokenizer_config.json says about the special tokens.
type spConfig struct {
	eos   string
	added map[string]spAdded // by content
}

type spAdded struct{ lstrip, rstrip bool }

func readSPConfig(path string) (spConfig, error) {
	c := spConfig{eos: "</s>"}
	if path == "" {
		return c, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	var spec struct {
		EOS   json.RawMessage `json:"eos_token"`
		Added map[string]struct {
			Content string `json:"content"`
			Lstrip  bool   `json:"lstrip"`
			Rstrip  bool   `json:"rstrip"`
		} `json:"added_tokens_decoder"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if eos := tokenContent(spec.EOS); eos != "" {
		c.eos = eos
	}
	c.added = map[string]spAdded{}
	for _, a := range spec.Added {
		c.added[a.Content] = spAdded{a.Lstrip, a.Rstrip}
	}
	return c, nil
}

// tokenizer.json structures, in the field order tokenizers writes.
type (
	jsonAdded struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	jsonPattern struct {
		String *string `json:"String,omitempty"`
		Regex  *string `json:"Regex,omitempty"`
	}
	jsonReplace struct {
		Type    string      `json:"type"`
		Pattern jsonPattern `json:"pattern"`
		Content string      `json:"content"`
	}
	jsonSpecial struct {
		ID     string   `json:"id"`
		IDs    []int    `json:"ids"`
		Tokens []string `json:"tokens"`
	}
	jsonTemplatePiece struct {
		Sequence     *jsonTemplateID `json:"Sequence,omitempty"`
		SpecialToken *jsonTemplateID `json:"SpecialToken,omitempty"`
	}
	jsonTemplateID struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	}
	jsonUnigram struct {
		Type         string  `json:"type"`
		UnkID        int     `json:"unk_id"`
		Vocab        [][]any `json:"vocab"`
		ByteFallback bool    `json:"byte_fallback"`
	}
	jsonTokenizer struct {
		Version       string      `json:"version"`
		Truncation    any         `json:"truncation"`
		Padding       any         `json:"padding"`
		AddedTokens   []jsonAdded `json:"added_tokens"`
		Normalizer    any         `json:"normalizer"`
		PreTokenizer  any         `json:"pre_tokenizer"`
		PostProcessor any         `json:"post_processor"`
		Decoder       any         `json:"decoder"`
		Model         jsonUnigram `json:"model"`
	}
)

func replaceJSON(regex bool, pattern, content string) jsonReplace {
	r := jsonReplace{Type: "Replace", Content: content}
	if regex {
		r.Pattern.Regex = &pattern
	} else {
		r.Pattern.String = &pattern
	}
	return r
}

func (m *spModel) tokenizerJSON(cfg spConfig) ([]byte, error) {
	t := jsonTokenizer{Version: "1.0", Model: jsonUnigram{Type: "Unigram", UnkID: m.unkID, ByteFallback: m.byteFallback}}
	eosID := -1
	var userDefined []string
	t.Model.Vocab = make([][]any, len(m.pieces))
	for i, p := range m.pieces {
		t.Model.Vocab[i] = []any{p.piece, float64(p.score)}
		if p.piece == cfg.eos {
			eosID = i
		}
		switch p.typ {
		case spControl, spUnknown:
			// Never produced from text by SentencePiece; as special added
			// tokens they are matched whole and left out of normalization.
			a := jsonAdded{ID: i, Content: p.piece, Special: true}
			if s, ok := cfg.added[p.piece]; ok {
				a.Lstrip, a.Rstrip = s.lstrip, s.rstrip
			} else if cfg.added == nil && (p.piece == cfg.eos || i == m.unkID) {
				a.Lstrip, a.Rstrip = true, true // SiglipTokenizer's own eos/unk/pad tokens
			}
			t.AddedTokens = append(t.AddedTokens, a)
		case spUserDefined:
			userDefined = append(userDefined, p.piece)
		}
	}
	if eosID < 0 {
		return nil, fmt.Errorf("the end-of-sequence token %q is not a piece; SigLIP's text tower needs it after the text", cfg.eos)
	}

	// Normalizer, in SentencePiece's order.
	norm := []any{}
	if len(m.charsmap) > 0 {
		norm = append(norm, map[string]string{
			"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(m.charsmap)})
	}
	if m.removeExtraWhitespaces {
		// Only spaces: SentencePiece leaves other whitespace alone (the
		// character map has already turned most of it into spaces).
		norm = append(norm, replaceJSON(true, `\A +| +\z`, ""), replaceJSON(true, " {2,}", " "))
	}
	if m.escapeWhitespaces {
		norm = append(norm, replaceJSON(false, " ", "▁"))
	}
	if m.addDummyPrefix {
		// Metaspace adds no prefix to text that starts with "▁";
		// SentencePiece does.
		norm = append(norm, replaceJSON(true, `\A▁`, "▁▁"))
	}
	t.Normalizer = map[string]any{"type": "Sequence", "normalizers": norm}

	// Pre-tokenizer: the dummy prefix for each section between added
	// tokens, then user-defined pieces cut out whole (SentencePiece never
	// splits or merges them); the Unigram lattice runs over the rest whole.
	var pre []any
	if m.addDummyPrefix {
		pre = append(pre, map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false})
	}
	if len(userDefined) > 0 {
		sort.SliceStable(userDefined, func(i, j int) bool { return len(userDefined[i]) > len(userDefined[j]) })
		var alt bytes.Buffer
		for i, u := range userDefined {
			if i > 0 {
				alt.WriteByte('|')
			}
			alt.WriteString(regexp.QuoteMeta(u))
		}
		pattern := alt.String()
		pre = append(pre, map[string]any{"type": "Split", "pattern": jsonPattern{Regex: &pattern}, "behavior": "Isolated", "invert": false})
	}
	if pre != nil {
		t.PreTokenizer = map[string]any{"type": "Sequence", "pretokenizers": pre}
	}

	eos := cfg.eos
	t.PostProcessor = map[string]any{
		"type":   "TemplateProcessing",
		"single": []jsonTemplatePiece{{Sequence: &jsonTemplateID{ID: "A"}}, {SpecialToken: &jsonTemplateID{ID: eos}}},
		"pair": []jsonTemplatePiece{{Sequence: &jsonTemplateID{ID: "A"}}, {SpecialToken: &jsonTemplateID{ID: eos}},
			{Sequence: &jsonTemplateID{ID: "B"}}, {SpecialToken: &jsonTemplateID{ID: eos}}},
		"special_tokens": map[string]jsonSpecial{eos: {ID: eos, IDs: []int{eosID}, Tokens: []string{eos}}},
	}

	dec := []any{replaceJSON(false, "▁", " ")}
	if m.byteFallback {
		dec = append(dec, map[string]string{"type": "ByteFallback"})
	}
	if m.addDummyPrefix || m.byteFallback {
		dec = append(dec, map[string]string{"type": "Fuse"})
	}
	if m.addDummyPrefix {
		dec = append(dec, map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0})
	}
	t.Decoder = map[string]any{"type": "Sequence", "decoders": dec}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<unk>", not "\u003cunk\u003e"
	enc.SetIndent("", "  ")
	if err := enc.Encode(t); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
