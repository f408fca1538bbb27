package configs

import (
	"slices"
	"strings"
	"testing"
)

// TestHostileErrors: what a hostile file is told, exactly: one problem
// where a bound stopped it, and lines of readable width.
func TestHostileErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{
			name: "a syntax error at the end of a long line",
			src:  base + "deep: " + strings.Repeat("a", 2000) + ": b\n",
			want: []string{
				"cams.yaml:9:7: invalid YAML: mapping value is not allowed in this context",
				"     8 |         threshold: 0.3",
				">    9 | deep: " + strings.Repeat("a", 114) + "…",
				"       |       ^",
			},
		},
		{
			name: "a long value quoted in the message",
			src:  base + "inference: {batch_size: 1" + strings.Repeat("9", 5000) + "}\n",
			want: []string{`cams.yaml:9: inference.batch_size: expected a whole number, got "1` +
				strings.Repeat("9", 169) + "…" + strings.Repeat("9", 98) + `"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cams.yaml", []byte(tt.src), env(nil))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
