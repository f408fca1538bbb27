package framestore

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzScanSegment: whatever bytes a .emb file holds (a disk error, another
// program's file, a half-written record), reading it ends with records,
// a torn tail or errCorrupt: no panic, and no allocation beyond a record's
// bound (maxRecord).
func FuzzScanSegment(f *testing.F) {
	good := header("model", 4)
	good = appendRecord(good, &record{camera: "porch", time: 1, embedding: encodeEmbedding([]float32{0.5, 0.5, 0.5, 0.5}), thumbLen: 3})
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(header("", 1))
	f.Add([]byte("SGLPFRM1\xff\xff"))
	f.Add(append(header("m", 2), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "00000001.emb")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var offs []int64
		var sizes []int
		_, dim, end, _, _ := scanSegment(p, func(off int64, r *record) {
			offs, sizes = append(offs, off), append(sizes, len(r.embedding))
		})
		for i, off := range offs {
			if sizes[i] != 4*dim || off >= end {
				t.Fatalf("record at %d: %d embedding bytes, dim %d, end %d", off, sizes[i], dim, end)
			}
		}
		if end > int64(len(data)) {
			t.Fatalf("end %d past the file's %d bytes", end, len(data))
		}
	})
}
