package testenv

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hub stands in for the Hugging Face hub: it serves folders as model
// repositories the way huggingface.co's resolve endpoint does, with a
// separate storage server for LFS files, and can misbehave on purpose.
//
//	HEAD|GET <URL>/<org>/<name>/resolve/<revision>/<path>
//	  small files: 200, ETag "<git blob sha1>", X-Repo-Commit
//	  LFS files (*.onnx, *.onnx_data*, *.safetensors, *.model, tokenizer.json,
//	    anything over 10 MB, as the hub requires): 302 to the storage server,
//	    X-Linked-Etag "<sha256>", X-Linked-Size, X-Repo-Commit
//	  unknown repository: 401 X-Error-Code RepoNotFound (as the hub answers
//	  anyone not logged in); unknown revision: 404 RevisionNotFound;
//	  unknown file: 404 EntryNotFound with X-Repo-Commit
//	GET <storage>/blobs/<sha256>: the content, with Range support
type Hub struct {
	URL     string // the endpoint (HF_ENDPOINT)
	Storage string // the storage server's address

	mu       sync.Mutex
	repos    map[string]*hubRepo
	requests []string // "HEAD /org/name/resolve/main/config.json", "GET storage /blobs/<sha256> [bytes=n-]"
	auth     []string // Authorization headers the storage server saw
	drop     map[string]int64
	corrupt  map[string]bool
	failWith int // when not 0, every resolve request gets this status
}

type hubRepo struct {
	commit string
	token  string            // when set, the repository is private: this bearer token is needed
	files  map[string][]byte // path → content
	sums   map[string]string // path → sha256 (hex), computed once: some test models are hundreds of MB
}

// StartHub starts a hub with no repositories; AddRepo adds them.
func StartHub(t testing.TB) *Hub {
	t.Helper()
	h := &Hub{repos: map[string]*hubRepo{}, drop: map[string]int64{}, corrupt: map[string]bool{}}
	storage := httptest.NewServer(http.HandlerFunc(h.serveStorage))
	t.Cleanup(storage.Close)
	// The endpoint listens on another port: a different host to a client,
	// which must not send it the token.
	hub := httptest.NewServer(http.HandlerFunc(h.serveResolve))
	t.Cleanup(hub.Close)
	h.URL, h.Storage = hub.URL, storage.URL
	return h
}

// AddRepo serves every file under dir as repository id at a commit named
// after the content; token, when not "", makes it private.
func (h *Hub) AddRepo(t testing.TB, id, dir, token string) (commit string) {
	t.Helper()
	r := &hubRepo{token: token, files: map[string][]byte{}, sums: map[string]string{}}
	all := sha1.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum := sha256.Sum256(b)
		r.files[filepath.ToSlash(rel)] = b
		r.sums[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		fmt.Fprintf(all, "%s %x\n", rel, sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.commit = hex.EncodeToString(all.Sum(nil))
	h.mu.Lock()
	h.repos[id] = r
	h.mu.Unlock()
	return r.commit
}

// DropOnce makes the storage server cut the connection once, after
// sending `after` bytes of the repository's file.
func (h *Hub) DropOnce(id, file string, after int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop[h.blobKey(id, file)] = after
}

// CorruptOnce makes the storage server send the file once with a byte
// changed.
func (h *Hub) CorruptOnce(id, file string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.corrupt[h.blobKey(id, file)] = true
}

func (h *Hub) blobKey(id, file string) string { return h.repos[id].sums[file] }

// FailWith makes every resolve request answer status (0: normal again), as
// a hub in trouble does.
func (h *Hub) FailWith(status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failWith = status
}

// Requests returns the requests served so far and forgets them.
func (h *Hub) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.requests
	h.requests = nil
	return r
}

// StorageAuth returns the Authorization headers the storage server saw.
func (h *Hub) StorageAuth() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.auth...)
}

// isLFS tells the files the hub keeps in LFS: those its .gitattributes
// names (ONNX graphs and their external data, safetensors, SentencePiece
// models, tokenizer.json) and anything over 10 MB, which it takes no other
// way.
func isLFS(path string, size int) bool {
	for _, suffix := range []string{".onnx", ".safetensors", ".model"} {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return strings.Contains(path, ".onnx_data") || path == "tokenizer.json" || size > 10<<20
}

func (h *Hub) serveResolve(w http.ResponseWriter, req *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, req.Method+" "+req.URL.Path)
	h.mu.Unlock()
	// /<org>/<name>/resolve/<revision>/<path>
	parts := strings.SplitN(strings.TrimPrefix(req.URL.Path, "/"), "/", 5)
	if len(parts) < 5 || parts[2] != "resolve" {
		http.NotFound(w, req)
		return
	}
	id, revision, path := parts[0]+"/"+parts[1], parts[3], parts[4]
	h.mu.Lock()
	r, failWith := h.repos[id], h.failWith
	h.mu.Unlock()
	if failWith != 0 {
		w.WriteHeader(failWith)
		return
	}
	fail := func(status int, code, msg string) {
		w.Header().Set("X-Error-Code", code)
		w.Header().Set("X-Error-Message", msg)
		w.WriteHeader(status)
	}
	if r == nil || r.token != "" && req.Header.Get("Authorization") != "Bearer "+r.token {
		fail(http.StatusUnauthorized, "RepoNotFound", "Repository not found")
		return
	}
	if revision != "main" && revision != r.commit {
		fail(http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+revision)
		return
	}
	w.Header().Set("X-Repo-Commit", r.commit)
	b, ok := r.files[path]
	if !ok {
		fail(http.StatusNotFound, "EntryNotFound", path+" does not exist on \""+revision+"\"")
		return
	}
	if isLFS(path, len(b)) {
		sum := r.sums[path]
		w.Header().Set("ETag", `"`+gitBlobSHA1([]byte("version https://git-lfs.github.com/spec/v1\n"))+`"`)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
		w.Header().Set("Location", h.Storage+"/blobs/"+sum)
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitBlobSHA1(b)+`"`)
	http.ServeContent(w, req, path, time.Time{}, bytes.NewReader(b))
}

func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (h *Hub) serveStorage(w http.ResponseWriter, req *http.Request) {
	key := strings.TrimPrefix(req.URL.Path, "/blobs/")
	h.mu.Lock()
	h.requests = append(h.requests, strings.TrimSpace(req.Method+" storage "+req.URL.Path+" "+req.Header.Get("Range")))
	if a := req.Header.Get("Authorization"); a != "" {
		h.auth = append(h.auth, a)
	}
	var content []byte
	for _, r := range h.repos {
		for path, sum := range r.sums {
			if sum == key {
				content = r.files[path]
			}
		}
	}
	after, drop := h.drop[key]
	delete(h.drop, key)
	corrupt := h.corrupt[key]
	delete(h.corrupt, key)
	h.mu.Unlock()
	if content == nil {
		http.NotFound(w, req)
		return
	}
	if corrupt {
		content = bytes.Clone(content)
		content[len(content)/2] ^= 0xff
	}
	if !drop {
		http.ServeContent(w, req, key, time.Time{}, bytes.NewReader(content))
		return
	}
	// Promise the whole file, send part of it, cut the connection.
	w.Header().Set("Content-Length", strconv.Itoa(len(content)))
	w.WriteHeader(http.StatusOK)
	w.Write(content[:after])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
}
