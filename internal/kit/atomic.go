package kit

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data atomically: a reader (or the next start
// after a crash) sees the old contents or the new, never half of them. It
// writes a temporary file beside path, fsyncs it when durable (the bytes
// reach the disk before the rename makes them the file: what a power cut
// must not lose), and renames it over path. On failure the temporary file
// is removed and path is untouched; the error names path.
func WriteFile(path string, data []byte, perm os.FileMode, durable bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	return nil
}

// CopyFile copies src to dst (created or truncated), for callers that make
// the whole folder atomic themselves (built beside its place, then
// renamed); the error names the file that failed.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
