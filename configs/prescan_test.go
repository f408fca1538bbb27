package configs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	goccyparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"
)

// TestPrescanDepth: how deep prescan finds each shape of YAML, where text
// that looks like nesting is not (quotes, comments, block scalars, plain
// scalars) and where levels close again (the stack does not leak).
func TestPrescanDepth(t *testing.T) {
	tests := []struct {
		name, src string
		depth     int // the deepest prescan counts; yaml.v3's tree is never deeper
	}{
		{"flat mapping", "a: 1\nb: 2\n", 1},
		{"nested mappings", "a:\n  b:\n    c: 1\n", 3},
		{"a list as a key's value, at the key's column", "a:\n- b: 1\n  c: [x]\nd: 2\n", 4},
		{"lists at the key's column close again", strings.Repeat("a:\n- x\n- y\nb:\n- z\n", 50), 3},
		{"compact nested lists", "- - - x\n", 4},
		{"items on the lines after their dashes", "cameras:\n" + strings.Repeat("  -\n    name: a\n    labels:\n    -\n      name: x\n", 40), 7},
		{"flow collections", "a: [{b: [1]}]\n", 4},
		{"a flow collection as a key", "!t {a}: b\n", 2},
		{"flow collections as keys in a list", "- {[x]: y}: z\n", 4},
		{"a pair in a flow sequence", "a: [b: c, [d: e]]\n", 4},
		{"flow over several lines", "a: [1,\n  [2,\n   3],\n  4]\nb: 1\n", 3},
		{"brackets in quotes", "a: '[[[['\nb: \"{{{{\\\"[[[\"\nc: 'it''s [['\n", 1},
		{"brackets in a quote over lines", "a: \"[[[\n  [[[[\n  ]\"\nb: 1\n", 1},
		{"brackets in comments", "a: 1 # [[[[\n# {{{{\nb: 2\n", 1},
		{"brackets in a block scalar", "a: |\n  [[[[\n  {{{{\n    [[[[\nb: >-\n  [[[\n\n  [[[\nc: 1\n", 1},
		{"a block scalar in a list", "- |\n [[[[\n- >\n  {{{{\n- x\n", 2},
		{"a block scalar with an indentation indicator", "a: |2\n    [[[[\n  [[[[\nb: 1\n", 1},
		{"an apostrophe inside a plain scalar", "a: it's [x\n  and 'more\nb: [1]\n", 2},
		{"a # without a space before it", "a: x#[[[\n", 4},
		{"a URL with brackets", "url: http://h/a[0]/b{1}\nname: x\n", 2},
		{"anchors, tags and aliases", "a: &x !!map {b: 1}\nc: *x\nd: !!str '['\n", 2},
		{"documents", "a: [[1]]\n---\nb: [2]\n...\n", 3},
		{"anchors at the ends of lines", "a: &x\nb: &y\nc: &z\n  d: 1\n", 2},
		// goccy/go-yaml nests each line after a line that ends in a tag.
		{"tags at the ends of lines", "a: !t\nb: !t\nc: !t\nd: 1\n", 4},
		{"the shipped example", string(Example), 6},
		{"the demo", string(Demo), 7}, // a flow mapping as a list item counts its column too
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scan("cams.yaml", []byte(tt.src))
			if s.err != nil {
				t.Fatalf("prescan: %v", s.err)
			}
			if s.deepest != tt.depth {
				t.Errorf("depth %d, want %d", s.deepest, tt.depth)
			}
			if d, ok := v3Depth([]byte(tt.src)); !ok || d > s.deepest {
				t.Errorf("yaml.v3: depth %d (parsed: %v), more than prescan's %d", d, ok, s.deepest)
			}
		})
	}
}

// TestPrescanShipped: every YAML file in the repository gets past prescan.
func TestPrescanShipped(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files here: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := prescan(f, data); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestRoughDepth: the count that decides whether goccy/go-yaml may read a
// file finds levels wherever a parser might, quotes and comments included.
func TestRoughDepth(t *testing.T) {
	tests := []struct {
		src  string
		want int
	}{
		{string(Example), 4},
		{"a: [[1], [2]]\n", 2},
		{"a: '[[[' # {{\n", 5},
		{"- - - x\n", 3},
		{"a: !t\nb: !t\nc: 1\n", 2},
		{"a:\n  -\n    b: 1\n", 2},
		{"a: ]]]\nb: [[\n", 2},
	}
	for _, tt := range tests {
		if got := roughDepth([]byte(tt.src)); got != tt.want {
			t.Errorf("roughDepth(%q) = %d, want %d", tt.src, got, tt.want)
		}
	}
}

// FuzzPrescan holds prescan to both YAML libraries: whatever yaml.v3
// parses is no deeper than prescan counted (so nothing deep gets past it
// hidden in what prescan took for a quote, a comment or a block scalar),
// nor what goccy/go-yaml parses deeper than prescan and roughDepth
// together (goccy reads its own way, and reads a file only when both find
// it shallow), and prescan
// counts no more than twice yaml.v3's depth plus roughDepth (brackets in
// text, and the levels counted for goccy's way of reading tags and lone
// "-"): no real configuration is refused for a level counted in error.
func FuzzPrescan(f *testing.F) {
	for _, seed := range []string{
		string(Example), string(Demo), base,
		"a:\n- b: 1\n  c: [x]\nd: 2\n", "- - - x\n", "a: [1,\n  [2,\n   3],\n  4]\nb: 1\n",
		"a: \"[[[\n  [[[[\n  ]\"\nb: 1\n", "a: |\n  [[[[\n  {{{{\nb: >-\n  [[[\nc: 1\n", "- |\n [[[[\n- x\n",
		"a: |2\n    [[[[\n  [[[[\nb: 1\n", "a: it's [x\n  and 'more\nb: [1]\n", "a: &x !!map {b: 1}\nc: *x\n",
		"a: [[1]]\n---\nb: [2]\n...\n", "? [a, b]\n: - c\n", "a: 'x\n\n  ''y'\nb: {c: d}\n", "a: !t\nb: !t &x\nc: 1\n- !t\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		s := scan("f.yaml", data)
		d, ok := v3Depth(data)
		if ok {
			if s.err == nil && d > s.deepest {
				t.Fatalf("yaml.v3 nests %d deep, prescan counted %d", d, s.deepest)
			}
			if most := 2*d + 2 + roughDepth(data); s.deepest > most {
				t.Fatalf("prescan counted %d levels where yaml.v3 has %d", s.deepest, d)
			}
		}
		if s.err != nil {
			return
		}
		// goccy reads a file again only when roughDepth finds it shallow
		// too (goccyParse): the two together bound how deep it goes.
		if file, err := goccyparser.ParseBytes(data, 0); err == nil {
			for _, doc := range file.Docs {
				if g, r := goccyDepth(doc), roughDepth(data); g > s.deepest+r {
					t.Fatalf("goccy/go-yaml nests %d deep, prescan counted %d and roughDepth %d", g, s.deepest, r)
				}
			}
		}
	})
}

// v3Depth is the most mappings and lists yaml.v3 nests in any document of
// data; ok is false when it cannot parse them all.
func v3Depth(data []byte) (depth int, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return depth, true
		}
		if err != nil {
			return depth, false
		}
		depth = max(depth, nodeDepth(&doc))
	}
}

func nodeDepth(n *yaml.Node) int {
	d := 0
	for _, c := range n.Content {
		d = max(d, nodeDepth(c))
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		d++
	}
	return d
}

// goccyDepth is the most mappings and lists goccy/go-yaml nests under n.
func goccyDepth(n ast.Node) int {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return 0
	}
	switch n := n.(type) {
	case *ast.DocumentNode:
		return goccyDepth(n.Body)
	case *ast.MappingNode:
		d := 0
		for _, kv := range n.Values {
			d = max(d, goccyDepth(kv)-1) // a pair in a mapping is no level of its own
		}
		return d + 1
	case *ast.MappingValueNode:
		return 1 + max(goccyDepth(n.Key), goccyDepth(n.Value))
	case *ast.MappingKeyNode:
		return goccyDepth(n.Value)
	case *ast.SequenceNode:
		d := 0
		for _, v := range n.Values {
			d = max(d, goccyDepth(v))
		}
		return d + 1
	case *ast.AnchorNode:
		return goccyDepth(n.Value)
	case *ast.TagNode:
		return goccyDepth(n.Value)
	}
	return 0
}
