// Package hub fetches model files from the Hugging Face hub into the cache
// the Python huggingface_hub library uses, so that a model already fetched
// by Python or transformers.js tooling is reused, and ours is reusable by
// them:
//
//	<cache>/models--<org>--<name>/
//	    blobs/<etag>               file contents, named by ETag: the sha256 of an LFS file,
//	                               the git blob sha1 of any other
//	    blobs/<etag>.incomplete    a download in progress, resumed with Range
//	    refs/<revision>            the commit a branch or tag pointed to (40 hex digits, no newline)
//	    snapshots/<commit>/<path>  relative symlinks to ../../blobs/<etag>
//	    .no_exist/<commit>/<path>  empty: the file is not in the repository at that commit
//	<cache>/.locks/models--<org>--<name>/<etag>.lock   one writer per blob (flock)
//
// A file is fetched the way huggingface_hub's hf_hub_download does: a HEAD
// of <endpoint>/<repo>/resolve/<revision>/<path> (Accept-Encoding: identity;
// only relative redirects followed) gives the commit (X-Repo-Commit), the
// ETag (X-Linked-Etag, else ETag), the size (X-Linked-Size, else
// Content-Length) and, for LFS files, the storage address (Location); a GET
// of that address fetches the blob, without the token when the host changes.
// Unlike huggingface_hub, every blob is checked against its ETag (sha256,
// or git's blob sha1) before it enters the cache: a corrupted download is
// fetched again, never used.
//
// Contract: a Client is safe for concurrent use and holds no open files
// between calls. Fetch blocks until the files are in the cache or ctx ends;
// it never logs the token.
package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// DefaultEndpoint is the hub's address unless HF_ENDPOINT says otherwise.
const DefaultEndpoint = "https://huggingface.co"

// Client fetches files from one hub endpoint into one cache.
type Client struct {
	Endpoint string // default DefaultEndpoint
	Token    string // sent as a bearer token to the endpoint; never logged
	Cache    string // the hub cache folder (see CacheDir)
	// Offline uses the cache only: nothing is fetched, and a file missing
	// from it is an error that names it.
	Offline bool
	// HTTP is the client for requests; nil means one with sane timeouts.
	HTTP *http.Client
	// Progress, when set, is called as a file downloads (from one
	// goroutine at a time, at most a few times a second, and once at the
	// end with done == total).
	Progress func(Progress)
}

// Progress is the state of one file's download.
type Progress struct {
	Repo, File  string
	Done, Total int64 // bytes; Done counts bytes resumed from an earlier attempt
}

// FromEnv is a Client configured as huggingface_hub configures itself:
// HF_ENDPOINT; HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the token file
// (HF_TOKEN_PATH, else $HF_HOME/token); CacheDir; HF_HUB_OFFLINE (or
// TRANSFORMERS_OFFLINE) set to 1, ON, YES or TRUE.
func FromEnv(getenv func(string) string) Client {
	c := Client{
		Endpoint: strings.TrimRight(cmp.Or(getenv("HF_ENDPOINT"), DefaultEndpoint), "/"),
		Token:    strings.TrimSpace(cmp.Or(getenv("HF_TOKEN"), getenv("HUGGING_FACE_HUB_TOKEN"))),
		Cache:    CacheDir(getenv),
		Offline:  isTrue(cmp.Or(getenv("HF_HUB_OFFLINE"), getenv("TRANSFORMERS_OFFLINE"))),
	}
	if c.Token == "" {
		path := cmp.Or(getenv("HF_TOKEN_PATH"), filepath.Join(hfHome(getenv), "token"))
		if b, err := os.ReadFile(path); err == nil {
			c.Token = strings.TrimSpace(string(b))
		}
	}
	return c
}

// CacheDir is huggingface_hub's cache folder: HF_HUB_CACHE, else
// HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, where HF_HOME defaults to
// $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
func CacheDir(getenv func(string) string) string {
	if d := cmp.Or(getenv("HF_HUB_CACHE"), getenv("HUGGINGFACE_HUB_CACHE")); d != "" {
		return expandHome(d, getenv)
	}
	return filepath.Join(hfHome(getenv), "hub")
}

func hfHome(getenv func(string) string) string {
	if d := getenv("HF_HOME"); d != "" {
		return expandHome(d, getenv)
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d, getenv), "huggingface")
	}
	return filepath.Join(expandHome("~", getenv), ".cache", "huggingface")
}

func expandHome(p string, getenv func(string) string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}

func isTrue(s string) bool {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// CheckRepoID reports whether id can be a model repository id.
func CheckRepoID(id string) error {
	if !kit.ValidModelID(id) {
		return fmt.Errorf("%q is not a Hugging Face model id (owner/name, e.g. Xenova/siglip-base-patch16-224)", id)
	}
	return nil
}

// Want is one file to fetch.
type Want struct {
	Path string
	// Optional files may be missing from the repository (404): they are
	// skipped, remembered in .no_exist, and absent from the snapshot.
	Optional bool
}

// Fetch makes every wanted file of repo at revision ("" means main) present
// in the cache and returns the snapshot folder that holds them. A file
// already complete in the cache is not downloaded again. When the hub
// cannot be reached (or Offline is set) the cache answers alone: Fetch then
// succeeds only if the cache has every required file.
func (c *Client) Fetch(ctx context.Context, repo, revision string, files []Want) (string, error) {
	if err := CheckRepoID(repo); err != nil {
		return "", err
	}
	revision = cmp.Or(revision, "main")
	r := &repoCache{dir: filepath.Join(c.Cache, "models--"+strings.ReplaceAll(repo, "/", "--")),
		locks: filepath.Join(c.Cache, ".locks", "models--"+strings.ReplaceAll(repo, "/", "--")), repo: repo}
	if c.Offline {
		return r.fromCache(revision, files, "offline mode (HF_HUB_OFFLINE) is on", false)
	}
	// A commit id names one snapshot for ever: when it holds every file,
	// or remembers an optional one as missing, there is nothing to ask the
	// hub.
	if isCommit(revision) {
		if snap, err := r.fromCache(revision, files, "", true); err == nil {
			return snap, nil
		}
	}
	var commit string
	for _, f := range files {
		meta, err := c.head(ctx, repo, revision, f.Path)
		var he *HTTPError
		switch {
		case errors.As(err, &he) && he.Status == http.StatusNotFound && he.Code == "EntryNotFound" && f.Optional:
			if meta.Commit == "" {
				continue
			}
			if commit != "" && meta.Commit != commit {
				return "", fmt.Errorf("%s@%s moved from commit %s to %s while its files were fetched; try again", repo, revision, commit[:12], meta.Commit[:12])
			}
			commit = meta.Commit
			r.noteMissing(commit, f.Path)
			continue
		case errors.As(err, &he) && he.Status < 500 && he.Status != http.StatusTooManyRequests:
			return "", err // the hub answered: no cache fallback for a wrong name or a missing token
		case err != nil:
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			// Unreachable or failing hub (5xx, 429): the cache may still
			// have it all.
			return r.fromCache(revision, files, "the hub cannot be reached: "+err.Error(), false)
		}
		if commit != "" && meta.Commit != commit {
			return "", fmt.Errorf("%s@%s moved from commit %s to %s while its files were fetched; try again", repo, revision, commit[:12], meta.Commit[:12])
		}
		commit = meta.Commit
		if err := c.fetchBlob(ctx, r, revision, f.Path, meta); err != nil {
			return "", err
		}
		if err := r.link(commit, f.Path, meta.ETag); err != nil {
			return "", err
		}
	}
	if commit == "" {
		return "", fmt.Errorf("%s@%s: none of the files exists", repo, revision)
	}
	if revision != commit {
		if err := r.setRef(revision, commit); err != nil {
			return "", err
		}
	}
	return r.snapshot(commit), nil
}

// isCommit reports whether rev is a full commit id.
func isCommit(rev string) bool {
	if len(rev) != 40 {
		return false
	}
	for _, c := range rev {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// httpClient is c.HTTP or a default: a connection must be made within 30 s
// and answer within 60 s; a body may take as long as it takes.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}
