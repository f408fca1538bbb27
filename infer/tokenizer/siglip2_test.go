package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siglipd/siglipd/infer/tokenizer"
	"github.com/siglipd/siglipd/internal/testenv"
)

// gemmaExtras is what SigLIP 2's Gemma tokenizer meets beyond the SigLIP
// corpus: characters outside its 256,000 pieces (byte fallback: NUL, new
// emoji, hieroglyphs), controls and private use, its added tokens typed as
// text (<eos>, HTML tags, runs of newlines and tabs), "▁" typed by a user,
// digits in many forms.
var gemmaExtras = []string{
	"bell\x07 and \x01 controls", "private \ue000\uf8ff use", "𓀀𓁐 hieroglyphs", "\U0001FAE8 new emoji", "\x00 nul",
	"tab\there\t\tand there", "new\nline\n\n\nthree", "<eos> and <pad> typed", "<b>bold</b> <start_of_turn>user",
	"▁already▁spaced", "\u200b zero width", "\r\n windows", "１２３ fullwidth digits", "3.14159 2,000,000 1e-9",
	"\U00010000 linear b", "\U000E0041 tag character",
	strings.Repeat("🚗 ", 40), strings.Repeat("x", 300),
}

// gemmaCorpus is the parity corpus for SigLIP 2.
var gemmaCorpus = append(slices.Clone(corpus), gemmaExtras...)

// The published SigLIP 2 tokenizer, loaded once per test binary: it is
// 34 MB of JSON. loadTime and loadHeap are what loading it took.
var siglip2Tok struct {
	once     sync.Once
	p        *tokenizer.Pretrained
	err      error
	loadTime time.Duration
	loadHeap uint64 // live heap it added, after a GC
}

func loadSigLIP2(t *testing.T) (*tokenizer.Pretrained, string) {
	t.Helper()
	dir := testenv.SigLIP2ReferenceDir(t)
	s := &siglip2Tok
	s.once.Do(func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		s.p, s.err = tokenizer.LoadPretrained(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json"))
		s.loadTime = time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		s.loadHeap = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.p, dir
}

// TestSigLIP2PublishedIDs: the published tokenizer files give the ids in
// token_ids_check.json (on which HF tokenizers and transformers.js agree),
// with the settings the files imply: <eos> appended, no <bos>, no
// lower-casing, padded with <pad> (0) to 64.
func TestSigLIP2PublishedIDs(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		// Loading 34 MB of JSON, one goroutine, many times slower under -race.
		t.Skip("single-goroutine loading of the published tokenizer: run without -race")
	}
	p, dir := loadSigLIP2(t)
	t.Logf("loaded the published tokenizer.json (34 MB) in %s; it holds %d MB of heap", siglip2Tok.loadTime.Round(time.Millisecond), siglip2Tok.loadHeap>>20)
	settings := []struct {
		name      string
		got, want any
	}{
		{"MaxLength", p.MaxLength, 64},
		{"PadID", p.PadID, 0},
		{"Canonicalize", p.Canonicalize, false},
		{"Lowercase", p.Lowercase, false},
		{"LowercaseASCII", p.LowercaseASCII, false},
		{"VocabSize", p.VocabSize(), 256000},
		{"SpecialCount", p.SpecialCount(), 1},
	}
	for _, s := range settings {
		if s.got != s.want {
			t.Errorf("%s = %v, want %v", s.name, s.got, s.want)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "token_ids_check.json"))
	if err != nil {
		t.Fatal(err)
	}
	var check struct {
		Cases []struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &check); err != nil {
		t.Fatal(err)
	}
	if len(check.Cases) == 0 {
		t.Fatal("token_ids_check.json has no cases")
	}
	for _, c := range check.Cases {
		if got := p.Encode(p.Prepare(c.Text), true); !slices.Equal(got, c.IDs) {
			t.Errorf("%q: ids\n ours %v\n want %v", c.Text, got, c.IDs)
		}
		want := make([]int, 64) // <pad> is 0
		copy(want, c.IDs)
		if got := int64s(p.EncodePadded(c.Text)); !slices.Equal(got, want) {
			t.Errorf("%q: padded ids\n ours %v\n want %v", c.Text, got, want)
		}
	}
}

// TestSigLIP2ParityTransformersJS: ids identical to transformers.js's on
// the SigLIP 2 corpus, bare and in the pipeline's template.
func TestSigLIP2ParityTransformersJS(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		// Single-goroutine code checked against Python and Node, which -race
		// only slows: the normal pass of make test runs it.
		t.Skip("a parity test with no concurrency of its own: run without -race")
	}
	p, dir := loadSigLIP2(t)
	checkParityOf(t, p, dir, gemmaCorpus)
}

// TestSigLIP2ParityPython: ids identical to HF tokenizers' (Rust, the
// reference implementation of tokenizer.json; without padding, and with
// the file's own padding block) and to transformers' AutoTokenizer as the
// zero-shot pipeline calls it (padding max_length 64, truncation); and
// model.lowercase: true lower-cases exactly what Python's bytes.lower does
// (A–Z only, as big_vision's tf.strings.lower).
func TestSigLIP2ParityPython(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		// Single-goroutine code checked against Python and Node, which -race
		// only slows: the normal pass of make test runs it.
		t.Skip("a parity test with no concurrency of its own: run without -race")
	}
	p, dir := loadSigLIP2(t)
	var texts []string
	for _, s := range gemmaCorpus {
		texts = append(texts, s, "This is a photo of "+s+".")
	}
	var py struct {
		Raw          [][]int           `json:"tokenizers_raw"`
		FilePadded   [][]int           `json:"tokenizers_padded"`
		Transformers [][]int           `json:"transformers"`
		Class        string            `json:"transformers_class"`
		PadID        int               `json:"pad_token_id"`
		EOSID        int               `json:"eos_token_id"`
		ASCIILower   []string          `json:"ascii_lower"`
		Versions     map[string]string `json:"versions"`
	}
	testenv.TorchJSON(t, "siglip2.py", filepath.Join(t.TempDir(), "req.json"), map[string]any{"op": "tokenize", "dir": dir, "texts": texts}, &py)
	t.Logf("Python %v: %s, pad %d, eos %d", py.Versions, py.Class, py.PadID, py.EOSID)
	if py.PadID != p.PadID {
		t.Errorf("pad id: ours %d, transformers %d", p.PadID, py.PadID)
	}
	lower := &tokenizer.Pretrained{Tokenizer: p.Tokenizer, MaxLength: p.MaxLength, PadID: p.PadID}
	if err := lower.SetLowercase("true"); err != nil {
		t.Fatal(err)
	}
	byteTokens := map[int]bool{}
	for b := 0; b < 256; b++ {
		if id, ok := p.TokenID(fmt.Sprintf("<0x%02X>", b)); ok {
			byteTokens[id] = true
		}
	}
	long, fallback := 0, 0
	for i, text := range texts {
		raw := p.Encode(text, true)
		if !slices.Equal(raw, py.Raw[i]) {
			t.Errorf("%q: ids\n ours       %v\n tokenizers %v", text, raw, py.Raw[i])
			continue
		}
		padded := int64s(p.EncodePadded(text))
		if !slices.Equal(padded, py.Transformers[i]) {
			t.Errorf("%q: padded ids\n ours         %v\n transformers %v", text, padded, py.Transformers[i])
		}
		// The file's padding block pads but never truncates.
		if len(raw) <= p.MaxLength && !slices.Equal(padded, py.FilePadded[i]) {
			t.Errorf("%q: padded ids\n ours       %v\n tokenizers %v (tokenizer.json's padding)", text, padded, py.FilePadded[i])
		}
		if len(raw) > p.MaxLength {
			long++
		}
		for _, id := range raw {
			if byteTokens[id] {
				fallback++
			}
		}
		if got := lower.Prepare(text); got != py.ASCIILower[i] {
			t.Errorf("lowercase true: Prepare(%q) = %q, bytes.lower gives %q", text, got, py.ASCIILower[i])
		}
	}
	if long == 0 || fallback == 0 {
		t.Errorf("the corpus has %d texts over %d tokens and %d byte-fallback tokens: it must exercise both", long, p.MaxLength, fallback)
	}
	t.Logf("%d texts: identical ids (%d over %d tokens, %d byte-fallback tokens)", len(texts), long, p.MaxLength, fallback)
}

// TestLoadPretrainedSettings: where pad token, length and lower-casing
// come from, for a Gemma-style tokenizer.json and the config files beside
// it, as transformers reads them.
func TestLoadPretrainedSettings(t *testing.T) {
	tests := []struct {
		name      string
		config    map[string]any // tokenizer_config.json; nil: none
		specials  map[string]any // special_tokens_map.json; nil: none
		tokenizer func(map[string]any)
		wantLen   int
		wantPad   int
		wantLower bool
		wantCanon bool
		wantErr   string
	}{
		{name: "tokenizer_config", config: map[string]any{"tokenizer_class": "GemmaTokenizer", "model_max_length": 64, "pad_token": "<pad>"},
			wantLen: 64, wantPad: 0},
		{name: "SigLIP 2's: model_max_length 1e30, do_lower_case ignored, length from tokenizer.json's padding",
			config: map[string]any{"tokenizer_class": "GemmaTokenizer", "model_max_length": 1e30, "do_lower_case": true, "pad_token": "<pad>"},
			tokenizer: func(tok map[string]any) {
				tok["padding"] = map[string]any{"strategy": map[string]any{"Fixed": 48}, "direction": "Right", "pad_id": 0, "pad_type_id": 0, "pad_token": "<pad>"}
			},
			wantLen: 48, wantPad: 0},
		{name: "pad from special_tokens_map", config: map[string]any{"tokenizer_class": "GemmaTokenizer"},
			specials: map[string]any{"pad_token": map[string]any{"content": "<unk>", "lstrip": false}}, wantLen: 64, wantPad: 2},
		{name: "pad and length from tokenizer.json alone",
			tokenizer: func(tok map[string]any) {
				tok["padding"] = map[string]any{"strategy": map[string]any{"Fixed": 32}, "pad_id": 1, "pad_token": "<eos>"}
			},
			wantLen: 32, wantPad: 1},
		{name: "length from truncation", config: map[string]any{"pad_token": "<pad>"},
			tokenizer: func(tok map[string]any) { tok["truncation"] = map[string]any{"max_length": 16} }, wantLen: 16, wantPad: 0},
		{name: "tokenizer_config wins", config: map[string]any{"pad_token": "<pad>", "model_max_length": 20},
			specials: map[string]any{"pad_token": "<eos>"},
			tokenizer: func(tok map[string]any) {
				tok["padding"] = map[string]any{"strategy": map[string]any{"Fixed": 32}, "pad_id": 1, "pad_token": "<eos>"}
			},
			wantLen: 20, wantPad: 0},
		{name: "SiglipTokenizer lower-cases", config: map[string]any{"tokenizer_class": "SiglipTokenizer", "do_lower_case": true, "pad_token": "<eos>"},
			wantLen: 64, wantPad: 1, wantLower: true, wantCanon: true},
		{name: "no pad anywhere, and no </s>", wantErr: `SigLIP's default: pad_token "</s>" is not in`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeGemmaStyleTokenizer(t, dir)
			tokPath, cfgPath := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json")
			var tok map[string]any
			readJSONFile(t, tokPath, &tok)
			if tt.tokenizer != nil {
				tt.tokenizer(tok)
			}
			writeJSONFile(t, tokPath, tok)
			os.Remove(cfgPath)
			if tt.config != nil {
				writeJSONFile(t, cfgPath, tt.config)
			} else {
				cfgPath = ""
			}
			if tt.specials != nil {
				writeJSONFile(t, filepath.Join(dir, "special_tokens_map.json"), tt.specials)
			}
			p, err := tokenizer.LoadPretrained(tokPath, cfgPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MaxLength != tt.wantLen || p.PadID != tt.wantPad || p.Lowercase != tt.wantLower || p.Canonicalize != tt.wantCanon {
				t.Errorf("MaxLength %d, PadID %d, Lowercase %v, Canonicalize %v; want %d, %d, %v, %v",
					p.MaxLength, p.PadID, p.Lowercase, p.Canonicalize, tt.wantLen, tt.wantPad, tt.wantLower, tt.wantCanon)
			}
		})
	}
}

// TestSetLowercase: model.lowercase on each kind of tokenizer.
func TestSetLowercase(t *testing.T) {
	const text = "This ÜBER Café, ΟΔΟΣ İ"
	tests := []struct {
		class, mode string // class: "SiglipTokenizer" or "GemmaTokenizer"
		want        string
		wantErr     string
	}{
		{class: "GemmaTokenizer", mode: "auto", want: text},
		{class: "GemmaTokenizer", mode: "", want: text},
		{class: "GemmaTokenizer", mode: "true", want: "this Über café, ΟΔΟΣ İ"},
		{class: "GemmaTokenizer", mode: "false", want: text},
		{class: "SiglipTokenizer", mode: "auto", want: "this über café οδος i̇"},
		{class: "SiglipTokenizer", mode: "true", want: "this über café οδος i̇"},
		{class: "SiglipTokenizer", mode: "false", want: "This ÜBER Café ΟΔΟΣ İ"},
		{class: "GemmaTokenizer", mode: "yes", wantErr: `lowercase "yes": want auto, true or false`},
	}
	for _, tt := range tests {
		t.Run(tt.class+"/"+tt.mode, func(t *testing.T) {
			siglip := tt.class == "SiglipTokenizer"
			p := &tokenizer.Pretrained{Canonicalize: siglip, Lowercase: siglip} // as LoadPretrained sets them
			err := p.SetLowercase(tt.mode)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Prepare(text); got != tt.want {
				t.Errorf("Prepare(%q) = %q, want %q", text, got, tt.want)
			}
		})
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
