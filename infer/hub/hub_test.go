package hub_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/internal/testenv"
)

const repo = "siglipd-test/tiny"

// files are those of a model folder the daemon fetches for the fp32 variant.
var files = []hub.Want{
	{Path: "config.json"}, {Path: "preprocessor_config.json"}, {Path: "tokenizer.json"},
	{Path: "tokenizer_config.json", Optional: true}, {Path: "special_tokens_map.json", Optional: true},
	{Path: "onnx/vision_model.onnx"}, {Path: "onnx/text_model.onnx"}, {Path: "onnx/model.onnx"},
}

// rig is a hub serving the tiny test model, and a client with a cold cache.
type rig struct {
	hub    *testenv.Hub
	client hub.Client
	model  string // the served folder
	commit string
}

func newRig(t *testing.T, token string) *rig {
	h := testenv.StartHub(t)
	model := testenv.Model(t, "tiny")
	r := &rig{hub: h, model: model, commit: h.AddRepo(t, repo, model, token)}
	r.client = hub.Client{Endpoint: h.URL, Token: token, Cache: t.TempDir()}
	return r
}

func (r *rig) fetch(t *testing.T, revision string, want ...hub.Want) (string, error) {
	t.Helper()
	if want == nil {
		want = files
	}
	return r.client.Fetch(context.Background(), repo, revision, want)
}

func gets(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET") {
			out = append(out, r)
		}
	}
	return out
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFetchCacheLayout: a cold fetch leaves huggingface_hub's layout —
// refs/main holding the commit without a newline, snapshot entries that
// are relative symlinks into blobs/ named by ETag (sha256 for LFS files,
// git's blob sha1 for others) — with every file's content intact; the
// token goes to the hub and never to the storage server.
func TestFetchCacheLayout(t *testing.T) {
	r := newRig(t, "hf_secret")
	snap, err := r.fetch(t, "")
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(r.client.Cache, "models--siglipd-test--tiny")
	if want := filepath.Join(repoDir, "snapshots", r.commit); snap != want {
		t.Errorf("snapshot %s, want %s", snap, want)
	}
	if ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main")); err != nil || string(ref) != r.commit {
		t.Errorf("refs/main = %q, %v; want %q", ref, err, r.commit)
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(r.model, f.Path))
		if os.IsNotExist(err) && f.Optional {
			if _, err := os.Lstat(filepath.Join(snap, f.Path)); err == nil {
				t.Errorf("%s: in the snapshot, but not in the repository", f.Path)
			}
			if _, err := os.Stat(filepath.Join(repoDir, ".no_exist", r.commit, f.Path)); err != nil {
				t.Errorf("%s: missing file not remembered in .no_exist: %v", f.Path, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		etag := sha256hex(want)
		if !strings.HasSuffix(f.Path, ".onnx") && f.Path != "tokenizer.json" {
			h := sha1.New()
			fmt.Fprintf(h, "blob %d\x00", len(want))
			h.Write(want)
			etag = hex.EncodeToString(h.Sum(nil))
		}
		link := filepath.Join(snap, f.Path)
		target, err := os.Readlink(link)
		wantTarget := strings.Repeat("../", strings.Count(f.Path, "/")+2) + "blobs/" + etag
		if err != nil || target != wantTarget {
			t.Errorf("%s -> %q (%v), want %q", f.Path, target, err, wantTarget)
		}
		if got, err := os.ReadFile(link); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs from the repository's (%v)", f.Path, err)
		}
	}
	if auth := r.hub.StorageAuth(); len(auth) > 0 {
		t.Errorf("the storage server was sent the token: %q", auth)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(repoDir, "blobs", "*.incomplete")); len(leftovers) > 0 {
		t.Errorf("incomplete downloads left: %v", leftovers)
	}
}

// TestFetchAgain: what is in the cache is never downloaded again — the
// hub is asked (HEAD) about a branch, not at all about a commit — and the
// cache answers alone when the hub is unreachable, failing (503) or offline
// mode is on;
// a cold cache then fails with an error that names what is missing.
func TestFetchAgain(t *testing.T) {
	r := newRig(t, "")
	if _, err := r.fetch(t, ""); err != nil {
		t.Fatal(err)
	}
	r.hub.Requests()

	if _, err := r.fetch(t, ""); err != nil {
		t.Fatal(err)
	}
	if g := gets(r.hub.Requests()); len(g) > 0 {
		t.Errorf("second fetch downloaded: %q", g)
	}
	if _, err := r.fetch(t, r.commit); err != nil {
		t.Fatal(err)
	}
	if reqs := r.hub.Requests(); len(reqs) > 0 {
		t.Errorf("fetch of a cached commit asked the hub: %q", reqs)
	}

	for _, tt := range []struct {
		name     string
		client   hub.Client
		failWith int
	}{
		{"offline", hub.Client{Endpoint: r.hub.URL, Cache: r.client.Cache, Offline: true}, 0},
		{"unreachable", hub.Client{Endpoint: "http://127.0.0.1:1", Cache: r.client.Cache}, 0},
		{"hub failing", hub.Client{Endpoint: r.hub.URL, Cache: r.client.Cache}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.hub.FailWith(tt.failWith)
			defer r.hub.FailWith(0)
			snap, err := tt.client.Fetch(context.Background(), repo, "main", files)
			if err != nil || filepath.Base(snap) != r.commit {
				t.Errorf("warm cache: %s, %v", snap, err)
			}
			cold := tt.client
			cold.Cache = t.TempDir()
			_, err = cold.Fetch(context.Background(), repo, "main", files)
			if err == nil || !strings.Contains(err.Error(), repo+"@main") || !strings.Contains(err.Error(), "not in the model cache") {
				t.Errorf("cold cache: %v; want an error naming %s@main and the cache", err, repo)
			}
			if reqs := r.hub.Requests(); len(reqs) > 0 && tt.failWith == 0 {
				t.Errorf("asked the hub: %q", reqs)
			}
		})
	}
}

// TestFetchResumes: a connection dropped mid-file, and a download an
// earlier run left half done, continue where they stopped (a Range
// request); a file corrupted in transit is detected by its sha256 and
// fetched again; the result is the repository's content every time.
func TestFetchResumes(t *testing.T) {
	const file = "onnx/vision_model.onnx"
	for _, tt := range []struct {
		name      string
		prepare   func(r *rig, content []byte)
		wantRange bool
	}{
		{"dropped connection", func(r *rig, content []byte) { r.hub.DropOnce(repo, file, int64(len(content)/3)) }, true},
		{"left by an earlier run", func(r *rig, content []byte) {
			blobs := filepath.Join(r.client.Cache, "models--siglipd-test--tiny", "blobs")
			os.MkdirAll(blobs, 0o755)
			os.WriteFile(filepath.Join(blobs, sha256hex(content)+".incomplete"), content[:len(content)/2], 0o644)
		}, true},
		{"corrupted in transit", func(r *rig, content []byte) { r.hub.CorruptOnce(repo, file) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "")
			content, err := os.ReadFile(filepath.Join(r.model, file))
			if err != nil {
				t.Fatal(err)
			}
			tt.prepare(r, content)
			snap, err := r.fetch(t, "", hub.Want{Path: file})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(snap, file)); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("content differs from the repository's (%v)", err)
			}
			g := gets(r.hub.Requests())
			ranged := slices.ContainsFunc(g, func(s string) bool { return strings.Contains(s, "bytes=") })
			if ranged != tt.wantRange {
				t.Errorf("requests %q: a Range request = %v, want %v", g, ranged, tt.wantRange)
			}
			if tt.name == "corrupted in transit" && len(g) != 2 {
				t.Errorf("requests %q: want the file fetched twice", g)
			}
		})
	}
}

// TestFetchErrors: each refusal of the hub is one line that names the
// repository, revision and file, and says what to change.
func TestFetchErrors(t *testing.T) {
	r := newRig(t, "hf_secret")
	for _, tt := range []struct {
		name     string
		token    string
		repo     string
		revision string
		file     string
		want     []string
	}{
		{"no token", "", repo, "main", "config.json", []string{repo + "@main: config.json", "401", "HF_TOKEN"}},
		{"wrong token", "hf_other", repo, "main", "config.json", []string{"401", "HF_TOKEN"}},
		{"no such repository", "hf_secret", "siglipd-test/nope", "main", "config.json", []string{"siglipd-test/nope@main", "no such repository", "model.id"}},
		{"no such revision", "hf_secret", repo, "v9", "config.json", []string{repo + "@v9", `no revision "v9"`}},
		{"no such file", "hf_secret", repo, "main", "onnx/vision_model_q9.onnx", []string{"onnx/vision_model_q9.onnx", "no such file", "variant"}},
		{"not a repository id", "hf_secret", "../etc", "main", "config.json", []string{`"../etc" is not a Hugging Face model id`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := r.client
			c.Token = tt.token
			_, err := c.Fetch(context.Background(), tt.repo, tt.revision, []hub.Want{{Path: tt.file}})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hf_secret") {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

// TestFromEnv: the cache folder, token and offline switch are found as
// huggingface_hub finds them.
func TestFromEnv(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_from_file\n"), 0o600)
	for _, tt := range []struct {
		name string
		env  map[string]string
		want hub.Client
	}{
		{"defaults", map[string]string{"HOME": "/home/u"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/home/u/.cache/huggingface/hub"}},
		{"XDG_CACHE_HOME", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/xdg/huggingface/hub"}},
		{"HF_HOME and its token file", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "HF_HOME": home},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: filepath.Join(home, "hub"), Token: "hf_from_file"}},
		{"HF_HUB_CACHE wins", map[string]string{"HF_HOME": "/hf", "HF_HUB_CACHE": "~/hubcache", "HOME": "/home/u", "HUGGINGFACE_HUB_CACHE": "/old"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/home/u/hubcache"}},
		{"legacy cache variable", map[string]string{"HOME": "/home/u", "HUGGINGFACE_HUB_CACHE": "/old"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/old"}},
		{"endpoint, token, offline", map[string]string{"HOME": "/home/u", "HF_ENDPOINT": "http://mirror:8080/", "HF_TOKEN": " hf_x ",
			"HUGGING_FACE_HUB_TOKEN": "hf_old", "HF_HUB_OFFLINE": "yes"},
			hub.Client{Endpoint: "http://mirror:8080", Cache: "/home/u/.cache/huggingface/hub", Token: "hf_x", Offline: true}},
		{"TRANSFORMERS_OFFLINE, old token variable", map[string]string{"HOME": "/home/u", "TRANSFORMERS_OFFLINE": "1", "HUGGING_FACE_HUB_TOKEN": "hf_old"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/home/u/.cache/huggingface/hub", Token: "hf_old", Offline: true}},
		{"offline 0 is online", map[string]string{"HOME": "/home/u", "HF_HUB_OFFLINE": "0"},
			hub.Client{Endpoint: hub.DefaultEndpoint, Cache: "/home/u/.cache/huggingface/hub"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := hub.FromEnv(func(k string) string { return tt.env[k] })
			if got.Endpoint != tt.want.Endpoint || got.Cache != tt.want.Cache || got.Token != tt.want.Token || got.Offline != tt.want.Offline {
				t.Errorf("got endpoint %q cache %q token %q offline %v\nwant endpoint %q cache %q token %q offline %v",
					got.Endpoint, got.Cache, got.Token, got.Offline, tt.want.Endpoint, tt.want.Cache, tt.want.Token, tt.want.Offline)
			}
		})
	}
}
