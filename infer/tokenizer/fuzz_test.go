package tokenizer

import (
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/siglipd/siglipd/infer/testmodel"
)

// FuzzEncodePadded: any text, valid UTF-8 or not, gives exactly MaxLength
// ids, each in the vocabulary, ending in padding or </s>, the same every
// time, without panicking. The seeds are the parity corpus's kinds of text
// plus invalid UTF-8; `make test` runs it for a short, fixed time.
func FuzzEncodePadded(f *testing.F) {
	dir := f.TempDir()
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: dir}); err != nil {
		f.Fatal(err)
	}
	tok, err := LoadPretrained(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", "a photo of a cat", "A Photo of a CAT!!", "ΟΔΟΣ ΣΑΣ", "İİ ǅemal ᾈ", "x\x1cy\x1fz", "a\u2028b\u2029c",
		"\u00a0 nbsp \u3000", "don't-stop!!", "車 🚗 garage door", "\xff\xfe invalid \xc3\x28 utf-8", "\x00\x00",
		string(make([]byte, 300)), "word " + string(rune(0x10FFFF)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids := tok.EncodePadded(text)
		if len(ids) != tok.MaxLength {
			t.Fatalf("%d ids for %q, want %d", len(ids), text, tok.MaxLength)
		}
		for i, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d at %d is outside the vocabulary (%d) for %q", id, i, tok.VocabSize(), text)
			}
		}
		if again := tok.EncodePadded(text); !equal(again, ids) {
			t.Fatalf("two encodings of %q differ", text)
		}
		if p := tok.Prepare(text); utf8.ValidString(text) && !utf8.ValidString(p) {
			t.Fatalf("Prepare turned valid UTF-8 %q into invalid %q", text, p)
		}
	})
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
