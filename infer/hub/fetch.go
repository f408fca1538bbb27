package hub

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// meta is what the HEAD of a file says.
type meta struct {
	Commit   string
	ETag     string // normalized: no quotes, no W/
	Size     int64
	Location string // where to GET the blob
}

// HTTPError is an answer of the hub that refuses a file: the repository,
// revision or file does not exist, or a token is missing or not enough.
type HTTPError struct {
	Repo, Revision, File string
	Status               int
	Code, Message        string // X-Error-Code and X-Error-Message, when the hub sent them
}

func (e *HTTPError) Error() string {
	where := fmt.Sprintf("%s@%s: %s", e.Repo, e.Revision, e.File)
	var why string
	switch {
	case e.Status == http.StatusUnauthorized && e.Code != "GatedRepo":
		// The hub answers 401 for a repository that does not exist as for
		// a private one, to anyone without a token that can read it.
		why = "401 unauthorized: no such repository (check model.id), or it is private and needs a token that can read it (set HF_TOKEN)"
	case e.Code == "RepoNotFound":
		why = "no such repository (check model.id)"
	case e.Code == "RevisionNotFound":
		why = fmt.Sprintf("the repository has no revision %q (check model.revision)", e.Revision)
	case e.Code == "EntryNotFound" || e.Status == http.StatusNotFound:
		why = "no such file in the repository (is the variant right? not every repository has every variant)"
	case e.Code == "GatedRepo":
		why = "the repository is gated: accept its conditions on the hub with your account, and set HF_TOKEN"
	case e.Status == http.StatusForbidden:
		why = "403 forbidden: the token cannot read this repository"
	default:
		why = fmt.Sprintf("the hub answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		why += " (hub: " + e.Message + ")"
	}
	return where + ": " + why
}

// fileURL is the resolve address of a file.
func (c *Client) fileURL(repo, revision, path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.endpoint() + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

// authorize adds the token to requests to the hub's own host only: the
// storage a file redirects to must not see it.
func (c *Client) authorize(req *http.Request) {
	if c.Token == "" {
		return
	}
	if ep, err := url.Parse(c.endpoint()); err == nil && ep.Host == req.URL.Host {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
}

// head asks the hub about one file. On an error answer, meta still holds
// the commit when the hub named it (to remember a missing file).
func (c *Client) head(ctx context.Context, repo, revision, path string) (meta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.fileURL(repo, revision, path), nil)
	if err != nil {
		return meta{}, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	c.authorize(req)
	hc := *c.httpClient()
	// Like huggingface_hub: follow a relative redirect (a renamed
	// repository), stop at an absolute one (the storage of an LFS file).
	hc.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if loc, err := url.Parse(next.Response.Header.Get("Location")); err != nil || loc.Host != "" || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		c.authorize(next)
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return meta{}, err
	}
	resp.Body.Close()
	m := meta{Commit: resp.Header.Get("X-Repo-Commit")}
	if resp.StatusCode >= 400 {
		return m, &HTTPError{Repo: repo, Revision: revision, File: path, Status: resp.StatusCode,
			Code: resp.Header.Get("X-Error-Code"), Message: resp.Header.Get("X-Error-Message")}
	}
	m.ETag = normalizeETag(cmp.Or(resp.Header.Get("X-Linked-Etag"), resp.Header.Get("ETag")))
	size := resp.Header.Get("X-Linked-Size")
	redirect := resp.StatusCode >= 300 && resp.StatusCode < 400
	if size == "" && !redirect {
		size = resp.Header.Get("Content-Length")
	}
	m.Size, err = strconv.ParseInt(size, 10, 64)
	if m.Commit == "" || m.ETag == "" || err != nil || m.Size < 0 {
		return meta{}, fmt.Errorf("%s@%s: %s: the hub's answer lacks the commit, ETag or size of the file (is %s a Hugging Face hub?)",
			repo, revision, path, c.endpoint())
	}
	m.Location = resp.Request.URL.String()
	if loc := resp.Header.Get("Location"); redirect && loc != "" {
		u, err := resp.Request.URL.Parse(loc)
		if err != nil {
			return meta{}, fmt.Errorf("%s@%s: %s: bad redirect: %w", repo, revision, path, err)
		}
		m.Location = u.String()
	}
	return m, nil
}

func normalizeETag(s string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), `"`)
}

// maxAttempts bounds the downloads of one blob in one Fetch: a dropped
// connection resumes where it stopped, a corrupted result starts over.
const maxAttempts = 5

// fetchBlob makes blobs/<etag> present and complete, downloading it into
// blobs/<etag>.incomplete (resuming what an earlier attempt or run left)
// and checking it against its ETag before it takes its name.
func (c *Client) fetchBlob(ctx context.Context, r *repoCache, revision, path string, m meta) error {
	blob := r.blob(m.ETag)
	if st, err := os.Stat(blob); err == nil && st.Size() == m.Size {
		return nil
	}
	unlock, err := r.lock(m.ETag)
	if err != nil {
		return err
	}
	defer unlock()
	if st, err := os.Stat(blob); err == nil && st.Size() == m.Size { // another process finished it
		return nil
	}
	part := blob + ".incomplete"
	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-time.After(time.Duration(attempt-1) * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := c.download(ctx, r.repo, revision, path, m, part)
		var he *HTTPError
		switch {
		case errors.As(err, &he) || ctx.Err() != nil:
			return cmpErr(ctx.Err(), err)
		case err != nil:
			lastErr = err // a dropped connection: resume
			continue
		}
		if err := verify(part, m); err != nil {
			os.Remove(part) // corrupted: start over
			lastErr = err
			continue
		}
		if err := os.Chmod(part, 0o644); err != nil {
			return err
		}
		return os.Rename(part, blob)
	}
	return fmt.Errorf("%s: %s: gave up after %d attempts: %w", r.repo, path, maxAttempts, lastErr)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// download appends the rest of the blob to part; it returns nil once part
// has m.Size bytes.
func (c *Client) download(ctx context.Context, repo, revision, path string, m meta, part string) error {
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > m.Size { // not this blob's beginning
		if err := f.Truncate(0); err != nil {
			return err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	if have == m.Size {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Location, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	c.authorize(req)
	hc := *c.httpClient()
	hc.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		next.Header.Del("Authorization")
		c.authorize(next) // back on the hub's host only
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK: // the whole file (the server ignored Range)
		if err := f.Truncate(0); err != nil {
			return err
		}
		if have, err = f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	default:
		return &HTTPError{Repo: repo, Revision: revision, File: path, Status: resp.StatusCode,
			Code: resp.Header.Get("X-Error-Code"), Message: resp.Header.Get("X-Error-Message")}
	}
	p := progressWriter{c: c, p: Progress{Repo: repo, File: path, Done: have, Total: m.Size}}
	p.report(true)
	n, err := io.Copy(io.MultiWriter(f, &p), io.LimitReader(resp.Body, m.Size-have))
	p.report(true)
	if err != nil {
		return err
	}
	if have+n < m.Size {
		return fmt.Errorf("connection ended after %d of %d bytes", have+n, m.Size)
	}
	return f.Sync()
}

// verify checks a complete download against its ETag: a sha256 (LFS
// files) or git's blob sha1 (other files). Other ETags are checked by size
// only.
func verify(path string, m meta) error {
	var h hash.Hash
	switch len(m.ETag) {
	case 64:
		h = sha256.New()
	case 40:
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", m.Size)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	if h != nil {
		n, err = io.Copy(h, f)
	} else {
		n, err = io.Copy(io.Discard, f)
	}
	if err != nil {
		return err
	}
	if n != m.Size {
		return fmt.Errorf("downloaded %d bytes, the hub said %d", n, m.Size)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, m.ETag) {
			return fmt.Errorf("content does not match its ETag %s (got %s): corrupted in transit or at rest", m.ETag, got)
		}
	}
	return nil
}

// progressWriter reports download progress at most 4 times a second.
type progressWriter struct {
	c    *Client
	p    Progress
	last time.Time
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.p.Done += int64(len(b))
	w.report(false)
	return len(b), nil
}

func (w *progressWriter) report(force bool) {
	if w.c.Progress == nil || !force && time.Since(w.last) < 250*time.Millisecond {
		return
	}
	w.last = time.Now()
	w.c.Progress(w.p)
}
