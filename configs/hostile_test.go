package configs

import (
	"fmt"
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
			name: "the fault report: 100,000 deep under an unknown key",
			src:  base + "deep: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n",
			want: []string{
				"cams.yaml:9:70: nesting deeper than 64 levels (is this the right file?)",
				"     8 |         threshold: 0.3",
				">    9 | deep: " + strings.Repeat("[", 114) + "…",
				"       | " + strings.Repeat(" ", 69) + "^",
			},
		},
		{
			name: "deep block lists",
			src:  "a:\n" + strings.Repeat("- ", 70) + "x\n",
			want: []string{
				"cams.yaml:2:127: nesting deeper than 64 levels (is this the right file?)",
				"     1 | …",
				">    2 | …" + strings.Repeat("- ", 37) + "x",
				"       | " + strings.Repeat(" ", 61) + "^",
			},
		},
		{
			name: "deep indentation",
			src: func() string {
				var b strings.Builder
				for i := range 70 {
					b.WriteString(strings.Repeat(" ", i) + "a:\n")
				}
				return b.String()
			}(),
			want: []string{
				"cams.yaml:65:65: nesting deeper than 64 levels (is this the right file?)",
				"    64 | " + strings.Repeat(" ", 63) + "a:",
				">   65 | " + strings.Repeat(" ", 64) + "a:",
				"       | " + strings.Repeat(" ", 64) + "^",
			},
		},
		{
			name: "too many values",
			src:  "a: [" + strings.Repeat("1, ", 60_000) + "]\n",
			want: []string{
				"cams.yaml:1:150000: more than 100000 keys and values (is this the right file?)",
				">    1 | …" + strings.Repeat(", 1", 40) + "…",
				"       | " + strings.Repeat(" ", 61) + "^",
			},
		},
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
		{
			// A file that only a misreading of its quotes could find deep:
			// goccy/go-yaml is not asked where the error is (roughDepth).
			name: "brackets in quotes, then a syntax error",
			src:  base + "x: \"" + strings.Repeat("[", 200) + "\"\n\tbad: 1\n",
			want: []string{
				"cams.yaml:10: invalid YAML: found character that cannot start any token",
				"     9 | x: \"" + strings.Repeat("[", 116) + "…",
				">   10 | →bad: 1",
			},
		},
		{
			name: "a control character",
			src:  base + "x: a\x00b\n",
			want: []string{
				"cams.yaml:9:5: a control character (U+0000): YAML allows none here (is this the right file?)",
				"     8 |         threshold: 0.3",
				">    9 | x: a�b",
				"       |     ^",
			},
		},
		{
			name: "more problems than Parse collects",
			src:  base + strings.Repeat("sink: stdout\n", 1500),
			want: append(append([]string{"cams.yaml: stopped looking after 1000 problems (is this the right file?); the first follow"},
				func() (lines []string) {
					for i := 10; i < 10+MaxReported-1; i++ {
						lines = append(lines, fmt.Sprintf("cams.yaml:%d: sink: duplicate key (first at line 9)", i))
					}
					return lines
				}()...), "… and 951 more"),
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
