package tokenizer_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/tokenizer"
	"github.com/siglipd/siglipd/internal/testenv"
	"google.golang.org/protobuf/encoding/protowire"
)

// spmTexts is the parity corpus, raw and in the pipeline's template, plus
// text aimed at SentencePiece's own rules: characters outside the
// vocabulary (byte fallback or <unk>), the user-defined piece, whitespace
// SentencePiece collapses or keeps, control and format characters, and the
// "▁" character itself.
func spmTexts() []string {
	var texts []string
	for _, s := range corpus {
		texts = append(texts, s, "This is a photo of "+s+".")
	}
	return append(texts,
		"frontdoor", "a frontdoor open", "FrontDoor", "xfrontdoorx", "ｆｒｏｎｔdoor", "frontdoor\u2581",
		"🚗 thai รถยนต์ 🚲", "👨\u200d👩", "\u200b zero width", "\u00ad soft hyphen", "\ufeffbom", "Ǆ ﬀ ㎏", "\u0301x",
		"a\u3000b\u00a0c", "\t tab first", "line\r\nbreak", "\n", "\x00nul", "a\x7fb", "   ", "a  b   c",
		"x\u2581y", "\u2581lead", "abc\u2581", "▁▁",
	)
}

// spmLiteralSpecials spell control, unknown and byte pieces out. A
// tokenizer.json matches them (as added tokens, or as Unigram pieces) where
// SentencePiece never does, and Python's SiglipTokenizer splits the special
// ones out before canonicalizing; siglipd's label path canonicalizes first,
// so "<", "/" and ">" are gone and label text can never produce a control
// token. Only the tokenizer.json comparison applies to them.
var spmLiteralSpecials = []string{"<pad> x", "a </s> b", "a</s>b", "<unk>", "<0x41>", "x <0x41>", "<s>"}

type spmResponse struct {
	SPM    [][]int `json:"spm"`
	Siglip [][]int `json:"siglip"`
	HF     [][]int `json:"hf"`
}

// TestSentencePieceParity trains small unigram models with the
// sentencepiece library, saves them with transformers' SiglipTokenizer
// (the layout of Google's SigLIP repositories) and checks, on every text,
// that siglipd's ids from spiece.model are those of
//
//	spm:    SentencePieceProcessor.encode on the raw text (no </s>);
//	hf:     HF tokenizers on the tokenizer.json siglipd writes (with </s>);
//	siglip: transformers' SiglipTokenizer, the whole Python path
//	        (canonicalize, lower-case, </s>, pad to 64), against
//	        EncodePadded.
func TestSentencePieceParity(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range []struct {
		kind string
		// googleConfig uses the tokenizer_config.json and
		// special_tokens_map.json Google publishes for SigLIP instead of
		// the ones transformers writes today.
		googleConfig bool
		// siglip: compare with SiglipTokenizer. With no normalization
		// rule, transformers' SiglipTokenizer prepends "▁" to the text
		// itself and counts on nmt_nfkc to fold it into the dummy prefix;
		// without that rule it yields an extra "▁" that SentencePiece,
		// and so siglipd, do not (see docs/04-models.md).
		siglip        bool
		wantFallbacks bool // byte tokens must occur
		wantUser      bool // the user-defined piece must occur whole
	}{
		{kind: "siglip", siglip: true, wantFallbacks: true},
		{kind: "siglip", googleConfig: true, siglip: true, wantFallbacks: true},
		{kind: "t5", siglip: true},
		{kind: "identity", wantUser: true},
	} {
		name := tc.kind
		if tc.googleConfig {
			name += "/google-config"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			testenv.TorchScript(t, "spm.py", "train", dir, tc.kind)
			if tc.googleConfig {
				ref := testenv.SigLIPReferenceDir(t)
				for _, f := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
					b, err := os.ReadFile(filepath.Join(ref, f))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			spiece, config := filepath.Join(dir, "spiece.model"), filepath.Join(dir, "tokenizer_config.json")
			raw, err := tokenizer.SentencePieceToJSON(spiece, config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := tokenizer.FromSentencePiece(spiece, config)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Canonicalize || !p.Lowercase || p.MaxLength != 64 {
				t.Fatalf("SiglipTokenizer settings: canonicalize %v, lower-case %v, max length %d; want true, true, 64",
					p.Canonicalize, p.Lowercase, p.MaxLength)
			}
			fromJSON, err := tokenizer.LoadPretrained(filepath.Join(dir, "tokenizer.json"), config)
			if err != nil {
				t.Fatalf("the written tokenizer.json does not load: %v", err)
			}

			texts := append(spmTexts(), spmLiteralSpecials...)
			literal := len(texts) - len(spmLiteralSpecials)
			textsPath := filepath.Join(dir, "texts.json")
			b, _ := json.Marshal(texts)
			if err := os.WriteFile(textsPath, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var ref spmResponse
			if err := json.Unmarshal(testenv.TorchScript(t, "spm.py", "encode", dir, textsPath), &ref); err != nil {
				t.Fatal(err)
			}
			byteTok, userTok := firstByteToken(p), -1
			if id, ok := p.TokenID("frontdoor"); ok {
				userTok = id
			}
			fallbacks, user, long := 0, 0, 0
			for i, text := range texts {
				got := p.Encode(text, false)
				if i >= literal {
					if !slices.Equal(append(got, ref.HF[i][len(ref.HF[i])-1]), ref.HF[i]) {
						t.Errorf("%q: ids\n ours %v\n hf   %v", text, got, ref.HF[i])
					}
					if ids := p.EncodePadded(text); slices.ContainsFunc(ids[:slices.Index(ids, int64(p.PadID))], isControl(p)) {
						t.Errorf("%q: label text gave a control token: %v", text, ids)
					}
					continue
				}
				if !slices.Equal(got, ref.SPM[i]) {
					t.Errorf("%q: ids\n ours %v\n spm  %v", text, got, ref.SPM[i])
				}
				withEOS := p.Encode(text, true)
				if !slices.Equal(withEOS, ref.HF[i]) {
					t.Errorf("%q: ids with </s>\n ours %v\n hf   %v", text, withEOS, ref.HF[i])
				}
				if j := fromJSON.Encode(text, true); !slices.Equal(j, withEOS) {
					t.Errorf("%q: LoadPretrained of the written tokenizer.json gives %v, FromSentencePiece %v", text, j, withEOS)
				}
				padded := int64s(p.EncodePadded(text))
				if tc.siglip && !slices.Equal(padded, ref.Siglip[i]) {
					t.Errorf("%q: padded ids\n ours   %v\n siglip %v", text, padded, ref.Siglip[i])
				}
				for _, id := range got {
					if byteTok >= 0 && id >= byteTok && id < byteTok+256 {
						fallbacks++
					}
					if id == userTok {
						user++
					}
				}
				if len(p.Encode(p.Prepare(text), true)) > p.MaxLength {
					long++
				}
			}
			if tc.wantFallbacks && fallbacks == 0 {
				t.Error("no byte-fallback tokens: the texts did not exercise byte fallback")
			}
			if tc.wantUser && user == 0 {
				t.Error("the user-defined piece never occurred whole")
			}
			if long == 0 {
				t.Error("no text over the length limit: truncation went untested")
			}
			t.Logf("%d texts: identical ids (%d byte-fallback tokens, %d user-defined, %d over %d tokens)",
				len(texts), fallbacks, user, long, p.MaxLength)
		})
	}
}

// isControl reports whether an id is one of the model's control or unknown
// pieces.
func isControl(p *tokenizer.Pretrained) func(int64) bool {
	var ids []int64
	for _, s := range []string{"<pad>", "</s>", "<unk>"} {
		if id, ok := p.TokenID(s); ok {
			ids = append(ids, int64(id))
		}
	}
	return func(id int64) bool { return slices.Contains(ids, id) }
}

// firstByteToken is the id of <0x00>, or -1.
func firstByteToken(p *tokenizer.Pretrained) int {
	if id, ok := p.TokenID("<0x00>"); ok {
		return id
	}
	return -1
}

// TestSentencePieceJSONTransformersJS: transformers.js loads the written
// tokenizer.json and, on canonicalized text without characters outside the
// vocabulary, gives siglipd's ids. (Its Unigram model has no byte
// fallback, so unknown characters are left out here.)
func TestSentencePieceJSONTransformersJS(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	testenv.TorchScript(t, "spm.py", "train", dir, "siglip")
	spiece, config := filepath.Join(dir, "spiece.model"), filepath.Join(dir, "tokenizer_config.json")
	raw, err := tokenizer.SentencePieceToJSON(spiece, config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := tokenizer.FromSentencePiece(spiece, config)
	if err != nil {
		t.Fatal(err)
	}
	unk, _ := p.TokenID("<unk>")
	byteTok := firstByteToken(p)
	var texts []string
	for _, s := range spmTexts() {
		s = p.Prepare(s)
		known := true
		for _, id := range p.Encode(s, false) {
			known = known && id != unk && (id < byteTok || id >= byteTok+256)
		}
		if known {
			texts = append(texts, s)
		}
	}
	if len(texts) < len(corpus) {
		t.Fatalf("only %d texts without unknown characters", len(texts))
	}
	var ref tokenizeResponse
	testenv.Reference(t, map[string]any{"op": "tokenize", "model": dir, "texts": texts}, &ref)
	for i, text := range texts {
		if got := p.Encode(text, true); !slices.Equal(got, ref.Raw[i]) {
			t.Errorf("%q: ids\n ours %v\n  js  %v", text, got, ref.Raw[i])
		}
	}
	t.Logf("%d texts: identical ids", len(texts))
}

func TestSentencePieceErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		model   []byte
		wantErr string
	}{
		{"empty file", nil, "no pieces"},
		{"BPE", spmProto(spmPieces(), trainer(3, 2)), "model_type is BPE; siglipd reads only UNIGRAM"},
		{"whitespace suffix", spmProto(spmPieces(), trainer(24, 1)), "treat_whitespace_as_suffix"},
		{"unk_id not UNKNOWN", spmProto(spmPieces(), trainer(40, 1)), "unk_id 1 is not a piece of type UNKNOWN"},
		{"unk_id -1", spmProto(spmPieces(), trainer(40, uint64(1<<64-1))), "unk_id -1 is not a piece"},
		{"duplicate piece", spmProto(append(spmPieces(), piece("▁a", -2, 1))), `pieces[6] "▁a" is also pieces[3]`},
		{"empty piece", spmProto(append(spmPieces(), piece("", -2, 1))), "pieces[6] is empty"},
		{"unknown type", spmProto(append(spmPieces(), piece("x", -2, 9))), `pieces[6] "x": unknown type 9`},
		{"long piece", spmProto(append(spmPieces(), piece(strings.Repeat("a", 600), -2, 1))), "600 bytes long"},
		{"truncated", spmProto(spmPieces())[:20], "truncated"},
		{"no </s>", spmProto(spmPieces()[2:], trainer(40, 0)), `end-of-sequence token "</s>" is not a piece`},
		{"not protobuf", []byte("{\"model\": \"json\"}"), "not a usable SentencePiece model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spiece.model")
			if err := os.WriteFile(path, tc.model, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := tokenizer.FromSentencePiece(path, "")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, path, tc.wantErr)
			}
		})
	}
}

// TestSentencePieceMinimal: a hand-built model with no trainer or
// normalizer spec gets SentencePiece's defaults (dummy prefix, whitespace
// collapsed, unk_id 0) and SiglipTokenizer's (</s> appended, padding).
func TestSentencePieceMinimal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spiece.model")
	if err := os.WriteFile(path, spmProto(spmPieces()[2:], trainer(40, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenizer.FromSentencePiece(path, ""); err == nil {
		t.Fatal("a model with no </s> loaded")
	}
	if err := os.WriteFile(path, spmProto(spmPieces()), 0o644); err != nil {
		t.Fatal(err)
	}
	// With no trainer_spec, unk_id is 0: pieces[0] must be the unknown one.
	if _, err := tokenizer.FromSentencePiece(path, ""); err == nil || !strings.Contains(err.Error(), "unk_id 0") {
		t.Fatalf("error %v, want unk_id 0 rejected", err)
	}
	pieces := append([][]byte{piece("<unk>", 0, 2), piece("</s>", 0, 3)}, spmPieces()[3:]...)
	if err := os.WriteFile(path, spmProto(pieces), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := tokenizer.FromSentencePiece(path, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"a", []int{2, 1}},
		{"  A   a  ", []int{2, 2, 1}}, // lower-cased, spaces collapsed
		{"ab", []int{2, 4, 1}},
		{"b", []int{3, 4, 1}}, // "▁" then "b"
		{"z", []int{3, 0, 1}}, // "z" is unknown
		{"", []int{1}},
	} {
		got := p.EncodePadded(tc.text)
		if !slices.Equal(int64s(got[:len(tc.want)]), tc.want) || got[len(tc.want)] != 1 {
			t.Errorf("%q: %v, want %v then </s> padding", tc.text, got[:len(tc.want)+1], tc.want)
		}
	}
}

// FuzzSentencePiece: any bytes as spiece.model give a tokenizer or an
// error, never a panic; a tokenizer that loads encodes any text to exactly
// MaxLength ids inside its vocabulary. The size limits keep the cost of a
// hostile file bounded; the seeds are hand-built models and truncations.
func FuzzSentencePiece(f *testing.F) {
	valid := append([][]byte{piece("<unk>", 0, 2), piece("</s>", 0, 3)}, spmPieces()[3:]...)
	f.Add(spmProto(valid))
	f.Add(spmProto(append(valid, piece("frontdoor", 0, 4), piece("<0x41>", 0, 6)), trainer(35, 1)))
	f.Add(spmProto(valid, trainer(40, 0), normalizer(3, 0), normalizer(4, 0), normalizer(5, 0)))
	f.Add(spmProto(spmPieces(), trainer(40, 2)))
	f.Add(spmProto(spmPieces(), trainer(3, 2)))
	f.Add(spmProto(valid)[:9])
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "spiece.model")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := tokenizer.FromSentencePiece(path, "")
		if err != nil {
			return
		}
		for _, text := range []string{"", "a photo of a Frontdoor", "\xff\xfe ab \u2581 🚗", strings.Repeat("ab ", 40)} {
			ids := p.EncodePadded(text)
			if len(ids) != p.MaxLength {
				t.Fatalf("%d ids for %q, want %d", len(ids), text, p.MaxLength)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= p.VocabSize() {
					t.Fatalf("id %d for %q is outside the vocabulary (%d)", id, text, p.VocabSize())
				}
			}
		}
	})
}

// Hand-built SentencePiece ModelProtos (sentencepiece_model.proto).

// spmPieces: <pad> and </s> (CONTROL), <unk> (UNKNOWN), then "▁a", "▁"
// and "b" (NORMAL), in SigLIP's order.
func spmPieces() [][]byte {
	return [][]byte{piece("<pad>", 0, 3), piece("</s>", 0, 3), piece("<unk>", 0, 2),
		piece("▁a", -1, 1), piece("▁", -2, 1), piece("b", -3, 1)}
}

func piece(s string, score float32, typ int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, s)
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, math.Float32bits(score))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(typ))
}

// trainer and normalizer are a trainer_spec or normalizer_spec holding one
// varint field.
func trainer(num protowire.Number, v uint64) []byte    { return varintSpec(2, num, v) }
func normalizer(num protowire.Number, v uint64) []byte { return varintSpec(3, num, v) }

func varintSpec(spec, num protowire.Number, v uint64) []byte {
	inner := protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	return protowire.AppendBytes(protowire.AppendTag(nil, spec, protowire.BytesType), inner)
}

// spmProto is a ModelProto of pieces followed by specs (already framed).
func spmProto(pieces [][]byte, specs ...[]byte) []byte {
	var b []byte
	for _, p := range pieces {
		b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), p)
	}
	for _, s := range specs {
		b = append(b, s...)
	}
	return b
}
