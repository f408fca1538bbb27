package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pretrained is a tokenizer.json plus what tokenizer_config.json says about
// using it: the text a model sees is Prepare(text), encoded, truncated
// (keeping the special tokens) and padded to MaxLength.
type Pretrained struct {
	*Tokenizer
	MaxLength int
	PadID     int
	// Canonicalize is Python SiglipTokenizer's text clean-up before
	// SentencePiece: remove ASCII punctuation (string.punctuation), turn
	// runs of whitespace into one space, trim. tokenizer.json does not
	// encode it (nor does transformers.js apply it).
	Canonicalize bool
	// Lowercase is do_lower_case: SiglipTokenizer lower-cases after
	// canonicalizing, with Python's str.lower().
	Lowercase bool
	// LowercaseASCII lower-cases A–Z only: what SigLIP 2's authors do
	// before the Gemma tokenizer (big_vision's tf.strings.lower, in
	// training and in their demo), where Python transformers and
	// transformers.js do not lower-case at all. Set by SetLowercase.
	LowercaseASCII bool
}

// DefaultMaxLength is SigLIP's text length; its text tower pools the last
// position, so every input is padded to exactly this many tokens.
const DefaultMaxLength = 64

// LoadPretrained reads tokenizer.json and (when configPath is not empty)
// tokenizer_config.json, and special_tokens_map.json beside tokenizer.json
// when there is one. They settle, in this order of precedence:
//
//   - the pad token: tokenizer_config's pad_token, special_tokens_map's,
//     tokenizer.json's "padding", else "</s>" (SigLIP pads with its EOS;
//     SigLIP 2's Gemma files all say <pad>, id 0);
//   - the length: tokenizer_config's model_max_length when it is a real
//     limit (SigLIP's says 64; SigLIP 2's says 1e30, "none"), the fixed
//     length of tokenizer.json's "padding" (64 for SigLIP 2), its
//     "truncation", else DefaultMaxLength;
//   - lower-casing: do_lower_case, honoured only by SiglipTokenizer.
//     GemmaTokenizer ignores it — SigLIP 2's file says true, and neither
//     Python transformers nor transformers.js lower-cases (SetLowercase
//     changes this).
func LoadPretrained(tokenizerPath, configPath string) (*Pretrained, error) {
	tok, err := Load(tokenizerPath)
	if err != nil {
		return nil, err
	}
	return withConfig(tok, tokenizerPath, configPath)
}

// withConfig applies tokenizer_config.json (configPath may be "") to tok,
// read from tokenizerPath (named in errors).
func withConfig(tok *Tokenizer, tokenizerPath, configPath string) (*Pretrained, error) {
	p := &Pretrained{Tokenizer: tok, MaxLength: DefaultMaxLength}
	var cfg struct {
		TokenizerClass string          `json:"tokenizer_class"`
		DoLowerCase    bool            `json:"do_lower_case"`
		ModelMaxLength *float64        `json:"model_max_length"`
		PadToken       json.RawMessage `json:"pad_token"`
	}
	if configPath != "" {
		if err := readJSON(configPath, &cfg); err != nil {
			return nil, err
		}
	}
	var specials struct {
		PadToken json.RawMessage `json:"pad_token"`
	}
	specialsPath := filepath.Join(filepath.Dir(tokenizerPath), "special_tokens_map.json")
	if _, err := os.Stat(specialsPath); err == nil {
		if err := readJSON(specialsPath, &specials); err != nil {
			return nil, err
		}
	}
	p.Canonicalize = cfg.TokenizerClass == "SiglipTokenizer"
	p.Lowercase = cfg.DoLowerCase && cfg.TokenizerClass == "SiglipTokenizer"
	// transformers writes a huge number for "no limit"; SigLIP's is 64.
	switch {
	case cfg.ModelMaxLength != nil && *cfg.ModelMaxLength >= 1 && *cfg.ModelMaxLength < 1e6:
		p.MaxLength = int(*cfg.ModelMaxLength)
	case tok.padding != nil && tok.padding.fixed > 0:
		p.MaxLength = tok.padding.fixed
	case tok.truncateAt > 0:
		p.MaxLength = tok.truncateAt
	}
	pad, from := tokenContent(cfg.PadToken), configPath
	if pad == "" {
		pad, from = tokenContent(specials.PadToken), specialsPath
	}
	if pad == "" && tok.padding != nil {
		pad, from = tok.padding.token, tokenizerPath+` "padding"`
	}
	if pad == "" {
		pad, from = "</s>", "SigLIP's default" // SigLIP pads with </s>
	}
	id, ok := tok.TokenID(pad)
	if !ok {
		return nil, fmt.Errorf("%s: pad_token %q is not in %s", from, pad, tokenizerPath)
	}
	p.PadID = id
	if p.MaxLength <= p.SpecialCount() {
		return nil, fmt.Errorf("%s: model_max_length %d leaves no room for text", configPath, p.MaxLength)
	}
	return p, nil
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SetLowercase applies model.lowercase: "auto" (or "") keeps what
// LoadPretrained read; "true" lower-cases as the model was trained —
// Python's str.lower() for SiglipTokenizer (what its do_lower_case does),
// A–Z only otherwise (SigLIP 2: big_vision's tf.strings.lower); "false"
// lower-cases nothing.
func (p *Pretrained) SetLowercase(mode string) error {
	switch mode {
	case "", "auto":
	case "true":
		p.Lowercase = p.Canonicalize
		p.LowercaseASCII = !p.Canonicalize
	case "false":
		p.Lowercase, p.LowercaseASCII = false, false
	default:
		return fmt.Errorf("lowercase %q: want auto, true or false", mode)
	}
	return nil
}

// tokenContent reads a token given as "text" or {"content": "text", ...}.
func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}

// Prepare applies the text clean-up that precedes the tokenizer.json
// pipeline (see Canonicalize, Lowercase and LowercaseASCII).
func (p *Pretrained) Prepare(text string) string {
	if p.Canonicalize {
		text = CanonicalizeSigLIP(text)
	}
	switch {
	case p.Lowercase:
		text = PythonLower(text)
	case p.LowercaseASCII:
		text = asciiLower(text)
	}
	return text
}

// asciiLower lower-cases A–Z and leaves every other byte as it is, as
// TensorFlow's tf.strings.lower does with its default encoding.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// EncodePadded is the model input for text: Prepare, encode, truncate the
// text so that with its special tokens it fits MaxLength (so "</s>" is kept),
// add the special tokens, pad with PadID to exactly MaxLength.
func (p *Pretrained) EncodePadded(text string) []int64 {
	ids := p.Encode(p.Prepare(text), false)
	if room := p.MaxLength - p.SpecialCount(); len(ids) > room {
		ids = ids[:room]
	}
	ids = p.applyTemplate(ids)
	out := make([]int64, p.MaxLength)
	for i := range out {
		if i < len(ids) {
			out[i] = int64(ids[i])
		} else {
			out[i] = int64(p.PadID)
		}
	}
	return out
}

// pythonPunctuation is Python's string.punctuation.
const pythonPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// CanonicalizeSigLIP is SiglipTokenizer.canonicalize_text: remove
// string.punctuation, replace each run of whitespace (Python's \s) with one
// space, strip.
func CanonicalizeSigLIP(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	space := false
	for _, r := range text {
		if r < utf8.RuneSelf && strings.ContainsRune(pythonPunctuation, r) {
			continue
		}
		if pythonSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// pythonSpace is str.isspace(): Go's unicode.IsSpace plus the ASCII
// information separators U+001C–U+001F, which Python counts as whitespace.
func pythonSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// PythonLower is Python's str.lower(): Unicode lower-casing with the full
// mappings where they differ from Go's per-rune one: İ becomes "i̇" and a
// capital sigma at the end of a word becomes final ς.
func PythonLower(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range runes {
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(runes, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Unicode's Final_Sigma condition as CPython applies it: a
// cased letter before (skipping case-ignorable ones), none after.
func finalSigma(runes []rune, i int) bool {
	cased := func(r rune) bool { return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) }
	ignorable := func(r rune) bool {
		return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) || r == '\'' || r == '.' || r == ':'
	}
	before := false
	for j := i - 1; j >= 0; j-- {
		if ignorable(runes[j]) {
			continue
		}
		before = cased(runes[j])
		break
	}
	if !before {
		return false
	}
	for j := i + 1; j < len(runes); j++ {
		if ignorable(runes[j]) {
			continue
		}
		return !cased(runes[j])
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
