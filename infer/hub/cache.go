package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/siglipd/siglipd/internal/kit"
	"golang.org/x/sys/unix"
)

// repoCache is one repository's folder in the cache.
type repoCache struct {
	repo  string
	dir   string // <cache>/models--<org>--<name>
	locks string // <cache>/.locks/models--<org>--<name>
}

func (r *repoCache) blob(etag string) string       { return filepath.Join(r.dir, "blobs", etag) }
func (r *repoCache) snapshot(commit string) string { return filepath.Join(r.dir, "snapshots", commit) }

// lock takes the blob's lock file (flock, as huggingface_hub's filelock
// does), so two processes never write the same download.
func (r *repoCache) lock(etag string) (unlock func(), err error) {
	if err := os.MkdirAll(r.locks, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(r.locks, etag+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// link makes snapshots/<commit>/<path> point at the blob: a relative
// symlink, as huggingface_hub makes; a copy where the file system has no
// symlinks.
func (r *repoCache) link(commit, path, etag string) error {
	dst := filepath.Join(r.snapshot(commit), filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	target, err := filepath.Rel(filepath.Dir(dst), r.blob(etag))
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == target {
		return nil
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
		if err := kit.CopyFile(r.blob(etag), tmp); err != nil {
			return err
		}
	}
	return os.Rename(tmp, dst)
}

// setRef records that revision (a branch or tag) points at commit.
func (r *repoCache) setRef(revision, commit string) error {
	path := filepath.Join(r.dir, "refs", filepath.FromSlash(revision))
	if cur, err := os.ReadFile(path); err == nil && string(cur) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return kit.WriteFile(path, []byte(commit), 0o644, false)
}

// noteMissing remembers that path is not in the repository at commit.
func (r *repoCache) noteMissing(commit, path string) {
	p := filepath.Join(r.dir, ".no_exist", commit, filepath.FromSlash(path))
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}

// fromCache answers from the cache alone: the snapshot of revision, if it
// holds every required file. why says why the hub was not asked, for the
// error. strict also wants every optional file either in the snapshot or
// remembered in .no_exist as missing from the repository: a file never
// asked about is not known to be missing.
func (r *repoCache) fromCache(revision string, files []Want, why string, strict bool) (string, error) {
	because := ""
	if why != "" {
		because = "; " + why
	}
	commit := revision
	if !isCommit(revision) {
		b, err := os.ReadFile(filepath.Join(r.dir, "refs", filepath.FromSlash(revision)))
		if err != nil {
			return "", fmt.Errorf("%s@%s is not in the model cache %s%s", r.repo, revision, filepath.Dir(r.dir), because)
		}
		commit = strings.TrimSpace(string(b))
	}
	snap := r.snapshot(commit)
	for _, f := range files {
		_, err := os.Stat(filepath.Join(snap, filepath.FromSlash(f.Path)))
		if err == nil {
			continue
		}
		if f.Optional && strict {
			_, err = os.Stat(filepath.Join(r.dir, ".no_exist", commit, filepath.FromSlash(f.Path)))
		}
		if err != nil && (!f.Optional || strict) {
			return "", fmt.Errorf("%s@%s: %s is not in the model cache %s%s", r.repo, revision, f.Path, filepath.Dir(r.dir), because)
		}
	}
	return snap, nil
}
