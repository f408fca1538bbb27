package testenv

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// readmeMaxLines keeps the README a first read: what siglipd is, the two
// commands, install, a first model and links into docs/. Everything else
// belongs in the numbered docs/ pages.
const readmeMaxLines = 300

// TestDocs: every relative link in the repository's Markdown (README.md and
// the other top-level pages, everything under docs/) names a file that
// exists and, with an #anchor, a heading of that file; every page is
// reachable from README.md; and the README stays short.
func TestDocs(t *testing.T) {
	root := RepoRoot(t)
	fsys := os.DirFS(root)
	pages := markdownPages(t, fsys)
	if !slices.Contains(pages, "README.md") {
		t.Fatal("no README.md at the repository root")
	}
	for _, p := range checkLinks(fsys, pages) {
		t.Error(p)
	}
	for _, p := range unreachable(fsys, pages, "README.md") {
		t.Errorf("%s: no chain of links leads to it from README.md (add it to the README's or docs/README.md's list)", p)
	}
	readme, err := fs.ReadFile(fsys, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines, more than %d: move the detail into docs/ and link to it", n, readmeMaxLines)
	}
}

// markdownPages lists *.md at the top level and everything under docs/.
func markdownPages(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	top, err := fs.Glob(fsys, "*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages := top
	err = fs.WalkDir(fsys, "docs", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			pages = append(pages, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

var (
	// A fence opens and closes a code block: nothing inside is a heading or
	// a link.
	fenceRe = regexp.MustCompile("^ {0,3}(```|~~~)")
	// [text](target "title") and ![alt](target); the text may wrap.
	linkRe = regexp.MustCompile(`\[[^\]]*\]\(\s*([^)\s]*)(?:\s+"[^"]*")?\s*\)`)
	// [ref]: target
	refDefRe  = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*(\S+)`)
	codeRe    = regexp.MustCompile("`+[^`]*`+")
	commentRe = regexp.MustCompile(`(?s)<!--.*?-->`)
	headingRe = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
	htmlIDRe  = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	schemeRe  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// prose returns the page with its fenced code blocks and HTML comments
// blanked out (lines kept, so offsets still give line numbers): neither
// renders a heading or a link.
func prose(page string) string {
	lines := strings.Split(page, "\n")
	in := false
	for i, l := range lines {
		if fenceRe.MatchString(l) {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return commentRe.ReplaceAllStringFunc(strings.Join(lines, "\n"), blank)
}

// blank replaces every character of s but newlines with a space.
func blank(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

// githubAnchor is the anchor GitHub gives a heading: the text as rendered
// (code marks and link targets gone), lower case, punctuation other than
// '-' and '_' dropped, each space a '-'.
func githubAnchor(heading string) string {
	heading = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the anchors a page offers: its headings (a repeated one gets
// -1, -2, … as on GitHub) and explicit <a name> or <a id> tags.
func anchors(page string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	text := prose(page)
	for _, l := range strings.Split(text, "\n") {
		m := headingRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		a := githubAnchor(m[1])
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	for _, m := range htmlIDRe.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// link is one relative link of a page: the file it names (repository path,
// "" for the page itself) and its anchor.
type link struct {
	line           int
	target, anchor string
	file           string // the target resolved against the page's folder
}

// links returns a page's relative links; links with a scheme (https:,
// mailto:) are the web's business, not this test's.
func links(pagePath, page string) ([]link, []string) {
	text := prose(page)
	// Code spans hide links, but keep their length so offsets stay right.
	text = codeRe.ReplaceAllStringFunc(text, blank)
	var out []link
	var problems []string
	var matches [][]int
	matches = append(matches, linkRe.FindAllStringSubmatchIndex(text, -1)...)
	matches = append(matches, refDefRe.FindAllStringSubmatchIndex(text, -1)...)
	for _, m := range matches {
		raw := text[m[2]:m[3]]
		line := strings.Count(text[:m[2]], "\n") + 1
		if schemeRe.MatchString(raw) {
			continue
		}
		if raw == "" {
			problems = append(problems, fmt.Sprintf("%s:%d: a link with no target", pagePath, line))
			continue
		}
		target, anchor, _ := strings.Cut(raw, "#")
		unescaped, err := url.PathUnescape(target)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: link %q: %v", pagePath, line, raw, err))
			continue
		}
		l := link{line: line, target: raw, anchor: anchor, file: pagePath}
		if unescaped != "" {
			l.file = path.Join(path.Dir(pagePath), unescaped)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b link) int { return a.line - b.line })
	return out, problems
}

// checkLinks returns one line per broken relative link of the pages.
func checkLinks(fsys fs.FS, pages []string) []string {
	var problems []string
	cache := map[string]map[string]bool{}
	for _, p := range pages {
		page, err := fs.ReadFile(fsys, p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		ls, bad := links(p, string(page))
		problems = append(problems, bad...)
		for _, l := range ls {
			if l.file == ".." || strings.HasPrefix(l.file, "../") {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q leaves the repository", p, l.line, l.target))
				continue
			}
			if _, err := fs.Stat(fsys, l.file); err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s does not exist", p, l.line, l.target, l.file))
				continue
			}
			if l.anchor == "" || !strings.HasSuffix(l.file, ".md") {
				continue
			}
			as, ok := cache[l.file]
			if !ok {
				target, err := fs.ReadFile(fsys, l.file)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s:%d: link %q: %v", p, l.line, l.target, err))
					continue
				}
				as = anchors(string(target))
				cache[l.file] = as
			}
			if !as[l.anchor] {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s has no heading with the anchor #%s", p, l.line, l.target, l.file, l.anchor))
			}
		}
	}
	return problems
}

// unreachable returns the pages no chain of links leads to from start.
func unreachable(fsys fs.FS, pages []string, start string) []string {
	reached := map[string]bool{start: true}
	queue := []string{start}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		page, err := fs.ReadFile(fsys, p)
		if err != nil {
			continue
		}
		ls, _ := links(p, string(page))
		for _, l := range ls {
			if strings.HasSuffix(l.file, ".md") && !reached[l.file] {
				reached[l.file] = true
				queue = append(queue, l.file)
			}
		}
	}
	var out []string
	for _, p := range pages {
		if !reached[p] {
			out = append(out, p)
		}
	}
	return out
}

func TestGitHubAnchor(t *testing.T) {
	for _, c := range []struct{ heading, want string }{
		{"Speed", "speed"},
		{"Variants: fp32, int8, fp16", "variants-fp32-int8-fp16"},
		{"Remote inference: many daemons, one server", "remote-inference-many-daemons-one-server"},
		{"`siglipd classify` and `siglipd bench`", "siglipd-classify-and-siglipd-bench"},
		{"Events (`siglipd/events`, schema v1)", "events-siglipdevents-schema-v1"},
		{"Without a broker: `sink: stdout`", "without-a-broker-sink-stdout"},
		{"Per camera × label", "per-camera--label"},
		{"state_dir and HF_HOME", "state_dir-and-hf_home"},
		{"Sampling: the latest frame wins", "sampling-the-latest-frame-wins"},
		{"What siglipd computes, and how we know it is right", "what-siglipd-computes-and-how-we-know-it-is-right"},
		{"See [the docs](docs/README.md) first", "see-the-docs-first"},
		{"Größe und Ähnlichkeit", "größe-und-ähnlichkeit"},
	} {
		if got := githubAnchor(c.heading); got != c.want {
			t.Errorf("githubAnchor(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

// TestCheckLinks runs the checker on small made-up trees: what it must
// accept and what it must report.
func TestCheckLinks(t *testing.T) {
	target := "# Title\n\n## Speed\n\ntext\n\n## Speed\n\n```\n# not a heading\n```\n<a name=\"old-name\"></a>\n"
	for _, c := range []struct {
		name, readme string
		want         []string // substrings of the problems, in order; none: no problem
	}{
		{"a file and its headings", "[a](docs/a.md) [b](docs/a.md#speed) [c](docs/a.md#speed-1) [d](docs/a.md#title)", nil},
		{"an explicit anchor", "[a](docs/a.md#old-name)", nil},
		{"the page's own heading", "# Top\n\n[up](#top)", nil},
		{"a folder and a non-Markdown file", "[d](docs/) [f](docs/x.png) [g](docs/x.png#whatever)", nil},
		{"web links are not checked", "[w](https://example.com/missing.md#x) [m](mailto:a@b)", nil},
		{"a link that wraps", "[a long\nlink text](docs/a.md#speed)", nil},
		{"a reference definition", "[s][1]\n\n[1]: docs/a.md#speed\n", nil},
		{"links in code are not links", "`[x](nothere.md)`\n\n```\n[y](nothere.md)\n```\n", nil},
		{"links in comments are not links", "<!-- a page to come:\n[z](docs/09-later.md) -->\n", nil},
		{"a missing file", "text\n[a](docs/b.md)", []string{"README.md:2:", "docs/b.md does not exist"}},
		{"a missing anchor", "[a](docs/a.md#speed-2)", []string{"docs/a.md has no heading with the anchor #speed-2"}},
		{"a heading inside code is no anchor", "[a](docs/a.md#not-a-heading)", []string{"#not-a-heading"}},
		{"a missing anchor on the page itself", "# Top\n[a](#bottom)", []string{"README.md has no heading with the anchor #bottom"}},
		{"outside the repository", "[a](../elsewhere.md)", []string{"leaves the repository"}},
		{"an empty target", "[a]()", []string{"a link with no target"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"README.md":  {Data: []byte(c.readme)},
				"docs/a.md":  {Data: []byte(target)},
				"docs/x.png": {Data: []byte("png")},
			}
			got := checkLinks(fsys, []string{"README.md"})
			if len(c.want) == 0 {
				if len(got) != 0 {
					t.Errorf("problems %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("problems %q, want one containing %q", got, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(got[0], w) {
					t.Errorf("problem %q does not say %q", got[0], w)
				}
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	fsys := fstest.MapFS{
		"README.md":            {Data: []byte("[docs](docs/README.md)")},
		"CONTRIBUTING.md":      {Data: []byte("alone")},
		"docs/README.md":       {Data: []byte("[one](01-one.md#x)")},
		"docs/01-one.md":       {Data: []byte("# x\n[back](../README.md)")},
		"docs/02-orphan.md":    {Data: []byte("[one](01-one.md)")},
		"docs/measurements.md": {Data: []byte("[one](01-one.md)")},
	}
	pages := []string{"CONTRIBUTING.md", "README.md", "docs/01-one.md", "docs/02-orphan.md", "docs/README.md", "docs/measurements.md"}
	got := unreachable(fsys, pages, "README.md")
	want := []string{"CONTRIBUTING.md", "docs/02-orphan.md", "docs/measurements.md"}
	if !slices.Equal(got, want) {
		t.Errorf("unreachable = %q, want %q", got, want)
	}
}

// TestDocsNameRealTests: every test or fuzz target the docs name in
// backquotes (the fault matrix's last column, "checked by TestX") is a
// function of some _test.go file, so a renamed or deleted test cannot
// leave a guarantee pointing at nothing.
func TestDocsNameRealTests(t *testing.T) {
	root := RepoRoot(t)
	fsys := os.DirFS(root)
	defined := map[string]bool{}
	funcRe := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "node_modules") {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		for _, m := range funcRe.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nameRe := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)")
	for _, page := range markdownPages(t, fsys) {
		b, err := fs.ReadFile(fsys, page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range nameRe.FindAllStringSubmatch(line, -1) {
				if !defined[m[1]] {
					t.Errorf("%s:%d: names %s, which no _test.go file defines", page, i+1, m[1])
				}
			}
		}
	}
}
