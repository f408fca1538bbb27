package testenv

import (
	"fmt"
	"strings"
)

// HostileConfig is a configuration file built to cost its parser the most
// for its size: deep nesting, alias and merge expansion, very many keys or
// errors, very long lines. Every one fits siglipd's read limit.
type HostileConfig struct {
	Name string
	Data []byte
}

// HostileSize is the largest hostile file: configs.MaxFileSize, the most
// siglipd reads (testenv cannot import configs; configs' cost test checks
// the two agree).
const HostileSize = 1 << 20

// HostileConfigs returns the hostile files. valid is a small valid
// configuration that each file starts with, so its cost is the hostile
// part's; maxDepth is the deepest nesting the loader accepts, for the file
// that nests as deep as allowed everywhere it can.
func HostileConfigs(valid string, maxDepth int) []HostileConfig {
	// fill repeats unit after head as often as fits with tail.
	fill := func(head, unit, tail string) string {
		n := (HostileSize - len(head) - len(tail)) / len(unit)
		return head + strings.Repeat(unit, n) + tail
	}
	var indented strings.Builder
	indented.WriteString(valid + "deep:\n")
	for i := 1; indented.Len()+i+3 <= HostileSize; i++ {
		indented.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	// As deep as allowed: the document's mapping, deep's block list and
	// its item are three levels as the loader counts; flow lists fill the
	// rest.
	flow := maxDepth - 3
	atLimit := "  - " + strings.Repeat("[", flow) + strings.Repeat("]", flow) + "\n"
	prompts := "[" + strings.TrimSuffix(strings.Repeat("p, ", 1000), ", ") + "]"
	const tab = "\tx: 1\n" // a syntax error at the end: the second YAML parser reads it all
	var tagged string
	for i := range 7 {
		tagged += "deep" + strings.Repeat("x", i) + ": !t\n"
	}
	return []HostileConfig{
		{"deep flow list (the fault report: 100,000 deep, 200 KB)",
			[]byte(valid + "deep: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n")},
		{"unclosed flow list to the read limit", []byte(fill(valid+"deep: ", "[", "\n"))},
		{"deep flow mapping", []byte(valid + "deep: " + strings.Repeat("{a: ", 200_000) + "1" + strings.Repeat("}", 200_000) + "\n")},
		{"deep block list on one line", []byte(fill(valid+"deep:\n", "- ", "x\n"))},
		{"deep block mapping by indentation", []byte(indented.String())},
		{"deep block list holding deep flow lists", []byte(valid + "deep:\n" + strings.Repeat("- ", 100_000) + strings.Repeat("[", 100_000) + "\n")},
		{fmt.Sprintf("nesting %d deep repeated to the read limit, then a syntax error", maxDepth),
			[]byte(fill(valid+"deep:\n", atLimit, tab))},
		{"alias bomb: cameras × labels × prompts",
			[]byte(fill("model: {path: /m}\ncameras:\n  - &c {name: a, url: /v.mp4, labels: &l [&x {name: x, prompts: &p "+prompts+"}"+
				strings.Repeat(", *x", 1000)+"]}\n", "  - *c\n", ""))},
		{"merge-key bomb", []byte(func() string {
			var b strings.Builder
			b.WriteString("model: {path: /m}\ncameras:\n  - &m0 {name: a, url: /v.mp4, labels: [{name: x}]}\n")
			for i := 1; i < 30; i++ {
				fmt.Fprintf(&b, "  - &m%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 10), ", "))
			}
			return b.String()
		}())},
		{"very many cameras, each invalid", []byte(fill("model: {path: /m}\ncameras:\n", "- {}\n", ""))},
		{"very many unknown keys", []byte(fill(valid, "k: 1\n", ""))},
		{"very many duplicate keys", []byte(fill(valid, "sink: stdout\n", ""))},
		{"a key of 1 MiB", []byte(fill(valid, "k", ": 1\n"))},
		{"a value of 1 MiB where a number goes", []byte(fill(valid+"inference: {batch_size: 1", "9", "}\n"))},
		{"a line of 1 MiB with a syntax error at its end", []byte(fill(valid+"deep: ", "a", ": b\n"))},
		{"a syntax error after 1 MiB of YAML", []byte(fill(valid+"deep:\n", "  - {name: x, url: /v.mp4, labels: [{name: y}]}\n", tab))},
		{"very many anchors and aliases, then a syntax error", []byte(fill(valid+"deep:\n", "  - &a x\n  - *a\n", tab))},
		{"very many empty flow lists, then a syntax error", []byte(fill(valid+"deep: [", "[], ", "]\n"+tab))},
		{"very many documents", []byte(fill(valid, "---\n", ""))},
		{"very many ${VAR} substitutions, the last unterminated", []byte(fill(valid+"state_dir: \"", "${X:-x}", "${X\"\n"))},
		// goccy/go-yaml nests each line after one that ends in a tag: the
		// keys differ, as they would clash in one mapping.
		{"lines ending in a tag, then a syntax error", []byte(fill(valid, tagged, "x: [\n"))},
	}
}
