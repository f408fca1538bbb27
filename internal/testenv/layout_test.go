package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestLayout: the "Repository layout" of CONTRIBUTING.md lists every Go
// package and top-level folder of the repository, each once, and nothing
// that does not exist.
func TestLayout(t *testing.T) {
	root := RepoRoot(t)
	page, err := os.ReadFile(filepath.Join(root, "CONTRIBUTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile("(?s)## Repository layout\n.*?```\n(.*?)```").FindSubmatch(page)
	if section == nil {
		t.Fatal("CONTRIBUTING.md has no Repository layout section with a code block")
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(string(section[1])), "\n") {
		listed = append(listed, strings.TrimSuffix(strings.Fields(line)[0], "/"))
	}

	// Go packages, and top-level folders; build output, caches, hidden
	// folders (.ci aside) and test data are not the repository's layout.
	var want []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") && name != ".ci" || name == "testdata" ||
			name == "node_modules" || rel == "out" || rel == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() && filepath.Dir(rel) == "." && rel != "." && rel != "internal" {
			want = append(want, rel)
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			want = append(want, filepath.Dir(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Compact(slices.Sorted(slices.Values(want)))
	got := slices.Clone(listed)
	slices.Sort(got)
	if !slices.Equal(slices.Compact(got), got) {
		t.Errorf("the layout lists a folder twice: %q", listed)
	}
	for _, d := range want {
		if !slices.Contains(got, d) {
			t.Errorf("CONTRIBUTING.md's layout lacks %s/", d)
		}
	}
	for _, d := range got {
		if !slices.Contains(want, d) {
			t.Errorf("CONTRIBUTING.md's layout lists %s/, which is not a package or top-level folder of the repository", d)
		}
	}
}
