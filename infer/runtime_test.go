package infer

import (
	"slices"
	"testing"
)

// TestLibraryPaths: where siglipd looks for ONNX Runtime when nothing names
// it, for the layouts it is installed in. The .deb's private folder
// (/usr/lib/siglipd for /usr/bin/siglipd) comes right after "beside the
// binary"; the places looked at before it was added keep their order.
func TestLibraryPaths(t *testing.T) {
	tests := []struct {
		name, exe, wd string
		want          []string
	}{
		{
			name: "the .deb: /usr/bin/siglipd, started by systemd in /",
			exe:  "/usr/bin/siglipd", wd: "/",
			want: []string{
				"/usr/bin/libonnxruntime.so.1",
				"/usr/lib/siglipd/libonnxruntime.so.1",
				"/usr/lib/libonnxruntime.so.1",
				"/usr/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/.deps/onnxruntime/lib/libonnxruntime.so.1",
			},
		},
		{
			name: "make install: /usr/local/bin/siglipd, ONNX Runtime in /usr/local/lib",
			exe:  "/usr/local/bin/siglipd", wd: "/root",
			want: []string{
				"/usr/local/bin/libonnxruntime.so.1",
				"/usr/local/lib/siglipd/libonnxruntime.so.1",
				"/usr/local/lib/libonnxruntime.so.1",
				"/usr/local/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/root/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/.deps/onnxruntime/lib/libonnxruntime.so.1",
			},
		},
		{
			name: "a checkout: bin/siglipd run from a package folder, one .deps path not repeated",
			exe:  "/src/bin/siglipd", wd: "/src/infer",
			want: []string{
				"/src/bin/libonnxruntime.so.1",
				"/src/lib/siglipd/libonnxruntime.so.1",
				"/src/lib/libonnxruntime.so.1",
				"/src/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/src/infer/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/.deps/onnxruntime/lib/libonnxruntime.so.1",
			},
		},
		{
			name: "no executable path: the working directory's parents only",
			exe:  "", wd: "/a/b",
			want: []string{
				"/a/b/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/a/.deps/onnxruntime/lib/libonnxruntime.so.1",
				"/.deps/onnxruntime/lib/libonnxruntime.so.1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := libraryPaths(tt.exe, tt.wd); !slices.Equal(got, tt.want) {
				t.Errorf("libraryPaths(%q, %q):\n got %q\nwant %q", tt.exe, tt.wd, got, tt.want)
			}
		})
	}
}
