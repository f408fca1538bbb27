package infer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryFileName is the ONNX Runtime shared library's file name.
const LibraryFileName = "libonnxruntime.so.1"

// LibraryChoice is where the ONNX Runtime library was asked to come from, in
// order of precedence: the --ort-lib flag, the SIGLIPD_ORT_LIB environment
// variable, then the config file's inference.ort_lib.
type LibraryChoice struct {
	Flag, Env, Config string
}

// ProjectLibraryPaths are the places scripts/setup.sh, the Dockerfile and
// the .deb put the library: beside the binary, in ../lib/siglipd (the
// package's private folder: /usr/bin/siglipd finds /usr/lib/siglipd),
// in ../lib, and the repository's .deps folder, both relative to the
// executable and to the working directory.
func ProjectLibraryPaths() []string {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		exe = ""
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = ""
	}
	return libraryPaths(exe, wd)
}

// libraryPaths is ProjectLibraryPaths for an executable and a working
// directory ("" when unknown). The private folder comes before ../lib so a
// package's own copy wins over a stray one in /usr/lib; an install that
// has no ../lib/siglipd (make install, the container image) sees the
// order it always had.
func libraryPaths(exe, wd string) []string {
	var dirs []string
	if exe != "" {
		d := filepath.Dir(exe)
		dirs = append(dirs, d, filepath.Join(d, "..", "lib", "siglipd"), filepath.Join(d, "..", "lib"),
			filepath.Join(d, "..", ".deps", "onnxruntime", "lib"))
	}
	if wd != "" {
		// Walk up so "go test ./infer" (run in infer/) finds the repo's copy too.
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, ".deps", "onnxruntime", "lib"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	paths := make([]string, 0, len(dirs))
	seen := map[string]bool{}
	for _, d := range dirs {
		p := filepath.Clean(filepath.Join(d, LibraryFileName))
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	return paths
}

var runtimeState struct {
	sync.Mutex
	path string // the library in use once loaded
}

// LoadRuntime loads ONNX Runtime once per process and returns the library
// path it uses. An explicit choice (flag, env, config) must load; otherwise
// the project's install locations are tried, then the system's library path.
// The error lists every path tried and why each failed.
func LoadRuntime(choice LibraryChoice) (string, error) {
	runtimeState.Lock()
	defer runtimeState.Unlock()
	if runtimeState.path != "" {
		return runtimeState.path, nil
	}
	explicit := []struct{ source, path string }{
		{"--ort-lib", choice.Flag}, {"SIGLIPD_ORT_LIB", choice.Env}, {"inference.ort_lib", choice.Config},
	}
	for _, e := range explicit {
		if e.path == "" {
			continue
		}
		if err := initAt(e.path); err != nil {
			return "", fmt.Errorf("ONNX Runtime library from %s %s: %w", e.source, e.path, err)
		}
		runtimeState.path = e.path
		return e.path, nil
	}
	var tried []string
	for _, p := range ProjectLibraryPaths() {
		if _, err := os.Stat(p); err != nil {
			tried = append(tried, p+" (not found)")
			continue
		}
		if err := initAt(p); err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", p, err))
			continue
		}
		runtimeState.path = p
		return p, nil
	}
	// Last, let the dynamic linker search LD_LIBRARY_PATH and ld.so.cache.
	if err := initAt(LibraryFileName); err != nil {
		tried = append(tried, fmt.Sprintf("%s on the system library path (%v)", LibraryFileName, err))
		return "", fmt.Errorf("ONNX Runtime library not found; run scripts/fetch-ort.sh or set --ort-lib / SIGLIPD_ORT_LIB. Tried:\n  %s",
			strings.Join(tried, "\n  "))
	}
	runtimeState.path = LibraryFileName
	return LibraryFileName, nil
}

func initAt(path string) error {
	ort.SetSharedLibraryPath(path)
	// ONNX Runtime's own logger writes to stderr past our structured logs;
	// every failure it would log also comes back to us as an error, which
	// we log with its context, so keep it to fatal messages.
	if err := ort.InitializeEnvironment(ort.WithLogLevelFatal()); err != nil {
		// onnxruntime_go wraps dlerror text in two layers; keep the cause.
		msg := err.Error()
		if i := strings.LastIndex(msg, "\": "); i >= 0 {
			msg = msg[i+3:]
		}
		return errors.New(msg)
	}
	return nil
}

// RuntimeVersion is the loaded ONNX Runtime's version, e.g. "1.30.0".
func RuntimeVersion() string { return ort.GetVersion() }
