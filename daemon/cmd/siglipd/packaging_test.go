package main

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestSystemdUnit: configs/siglipd.service passes `systemd-analyze verify`
// (with ExecStart on the binary under test: verify checks it exists).
func TestSystemdUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	unit, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "configs", "siglipd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/siglipd ") {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/siglipd, which make install rewrites")
	}
	path := filepath.Join(t.TempDir(), "siglipd.service")
	os.WriteFile(path, []byte(strings.Replace(string(unit), "/usr/local/bin/siglipd", siglipdBin, 1)), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDebianVersion: scripts/package-deb.sh makes git describe output a
// Debian version, and the versions sort as the commits came, on either
// release (dpkg --compare-versions), with the bookworm package of a commit
// below its trixie package and both below the next commit's.
func TestDebianVersion(t *testing.T) {
	dpkg := testenv.LookPath(t, "dpkg")
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "package-deb.sh")
	version := func(describe, commits string) (string, error) {
		out, err := exec.Command("bash", script, "version", describe, commits).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// In the order the commits come.
	tests := []struct{ describe, commits, want string }{
		{"0589ed3", "257", "0~git257.g0589ed3"},
		{"0589ed3-dirty", "257", "0~git257.g0589ed3.dirty"},
		{"1a2b3c4d", "1000", "0~git1000.g1a2b3c4d"},
		{"v1.0.0-rc1", "1001", "1.0.0~rc1"},
		{"v1.0.0-rc1-2-gabc1234", "1003", "1.0.0~rc1+git2.gabc1234"},
		{"v1.0.0", "1010", "1.0.0"},
		{"v1.0.0-dirty", "1010", "1.0.0+dirty"},
		{"v1.0.0-1-gabc1234", "1011", "1.0.0+git1.gabc1234"},
		{"v1.0.0-12-g1234abc-dirty", "1022", "1.0.0+git12.g1234abc.dirty"},
		{"v1.0.1-beta-2", "1030", "1.0.1~beta.2"},
		{"v1.0.1", "1040", "1.0.1"},
		{"1.1", "1050", "1.1"},
	}
	var ordered []string
	for _, tt := range tests {
		got, err := version(tt.describe, tt.commits)
		if err != nil || got != tt.want {
			t.Errorf("version %s %s = %q, %v; want %q", tt.describe, tt.commits, got, err, tt.want)
		}
		for _, deb := range []string{"+deb12", "+deb13"} {
			v := got + deb
			if out, err := exec.Command(dpkg, "--validate-version", v).CombinedOutput(); err != nil {
				t.Errorf("%s (from %s): not a Debian version: %s", v, tt.describe, out)
			}
			ordered = append(ordered, v)
		}
	}
	for i := 1; i < len(ordered); i++ {
		if err := exec.Command(dpkg, "--compare-versions", ordered[i-1], "lt", ordered[i]).Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", ordered[i-1], ordered[i])
		}
	}
	for _, bad := range []struct{ describe, commits, want string }{
		{"vfoo", "", "tag vfoo does not make a Debian version"},
		{"0589ed3", "", "0589ed3 has no tag: the commit count (COMMITS) is needed"},
	} {
		if got, err := version(bad.describe, bad.commits); err == nil || !strings.Contains(got, bad.want) {
			t.Errorf("version %s: %q, %v; want an error saying %q", bad.describe, got, err, bad.want)
		}
	}
}

// TestDebPackagingFiles keeps what the .deb ships in step with the code:
// the copyright file names every Go module linked into the binary (and no
// other), the manual page every command and flag of --help, ONNX Runtime's
// notices are those of the version scripts/fetch-ort.sh fetches, and the
// packaged unit passes systemd-analyze verify.
func TestDebPackagingFiles(t *testing.T) {
	root := testenv.RepoRoot(t)
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("copyright names the linked modules", func(t *testing.T) {
		info, err := buildinfo.ReadFile(siglipdBin)
		if err != nil {
			t.Fatal(err)
		}
		linked := map[string]bool{}
		for _, m := range info.Deps {
			linked[m.Path] = true
		}
		copyright := read("packaging/deb/copyright")
		start := strings.Index(copyright, "Files: usr/bin/siglipd\n")
		if start < 0 {
			t.Fatal("packaging/deb/copyright: no 'Files: usr/bin/siglipd' paragraph")
		}
		para, _, _ := strings.Cut(copyright[start:], "\n\n")
		listed := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^ ([a-z0-9.-]+\.[a-z]+/\S+): `).FindAllStringSubmatch(para, -1) {
			listed[m[1]] = true
		}
		for m := range linked {
			if !listed[m] {
				t.Errorf("packaging/deb/copyright: module %s is linked into siglipd but not listed with its license", m)
			}
		}
		for m := range listed {
			if !linked[m] {
				t.Errorf("packaging/deb/copyright: module %s is listed but no longer linked", m)
			}
		}
	})

	t.Run("manual page names every command and flag", func(t *testing.T) {
		help, _, _ := run(t, nil, "--help")
		man := strings.ReplaceAll(read("packaging/deb/siglipd.1"), `\-`, "-")
		words := regexp.MustCompile(`(?m)^  siglipd ([a-z]+) `).FindAllStringSubmatch(help, -1)
		_, flags, _ := strings.Cut(help, "\nFlags:\n") // the commands' own flags are in their --help
		words = append(words, regexp.MustCompile(`(--[a-z-]+)`).FindAllStringSubmatch(flags, -1)...)
		if len(words) < 10 {
			t.Fatalf("found %d commands and flags in --help; its layout changed?\n%s", len(words), help)
		}
		for _, w := range words {
			if !strings.Contains(man, w[1]) {
				t.Errorf("packaging/deb/siglipd.1 does not mention %s (in siglipd --help)", w[1])
			}
		}
	})

	t.Run("ONNX Runtime notices are of the fetched version", func(t *testing.T) {
		m := regexp.MustCompile(`ORT_NPM_VERSION:-([0-9.]+)\}`).FindStringSubmatch(read("scripts/fetch-ort.sh"))
		if m == nil {
			t.Fatal("scripts/fetch-ort.sh: no ORT_NPM_VERSION default")
		}
		if got := strings.TrimSpace(read("packaging/deb/onnxruntime/VERSION")); got != m[1] {
			t.Errorf("packaging/deb/onnxruntime holds ONNX Runtime %s's notices, fetch-ort.sh fetches %s: replace them (README.md there)", got, m[1])
		}
	})

	t.Run("packaged unit", func(t *testing.T) {
		analyze := testenv.LookPath(t, "systemd-analyze")
		unit, err := exec.Command("bash", filepath.Join(root, "scripts", "package-deb.sh"), "unit").CombinedOutput()
		if err != nil {
			t.Fatalf("package-deb.sh unit: %v\n%s", err, unit)
		}
		path := filepath.Join(t.TempDir(), "siglipd.service")
		os.WriteFile(path, []byte(strings.Replace(string(unit), "/usr/bin/siglipd ", siglipdBin+" ", 1)), 0o644)
		// --man=no: the manual page is not installed here; scripts/deb-test.sh
		// verifies the installed unit, page included.
		out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}
