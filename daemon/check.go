package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/publish"
	"golang.org/x/sys/unix"
)

// Check finds, for --check, what the daemon would refuse at start
// that configs.Validate cannot see because it needs the disk: the model
// folder, the ONNX Runtime library, the broker's TLS files and the state
// folder. It opens no network connection: a hub model (model.id) is
// checked in the cache, and one the cache lacks is a note (it would be
// downloaded at start), not a problem. Each problem names the file and
// line of the value behind it.
func Check(cfg *configs.Config, lib infer.LibraryChoice, getenv func(string) string) (problems configs.Errors, notes []string) {
	var errs configs.Errors
	dir, key := cfg.Model.Path, "model.path"
	if cfg.Model.ID != "" {
		client := hub.FromEnv(getenv)
		client.Offline = true
		key = "model.id"
		d, err := ModelDir(context.Background(), cfg, client, slog.New(slog.DiscardHandler))
		if err != nil {
			notes = append(notes, fmt.Sprintf("model.id %s is not in the model cache %s yet: siglipd will download it at start "+
				"(or run: siglipd pull %s --variant %s)", cfg.Model.ID, client.Cache, cfg.Model.ID, cfg.Model.Variant))
		}
		dir = d
	}
	opts, err := modelOptions(cfg, dir, lib, nil)
	if err != nil {
		errs = append(errs, cfg.ErrorAt("inference.remote.tls", "%v", err))
	}
	if dir != "" && err == nil {
		if desc, err := infer.Check(opts); err != nil {
			errs = append(errs, cfg.ErrorAt(key, "%v", err))
		} else {
			notes = append(notes, "model: "+desc.String())
		}
	}
	if _, err := infer.LoadRuntime(lib); err != nil && cfg.Inference.Backend == "local" {
		key := "" // chosen by --ort-lib or SIGLIPD_ORT_LIB, or not chosen: no line to name
		if lib.Flag == "" && lib.Env == "" && lib.Config != "" {
			key = "inference.ort_lib"
		}
		errs = append(errs, cfg.ErrorAt(key, "%v", err))
	}
	if t := cfg.MQTT.TLS; cfg.Sink == "mqtt" && (t.CAFile != "" || t.CertFile != "") {
		if err := publish.CheckTLS(t.CAFile, t.CertFile, t.KeyFile); err != nil {
			errs = append(errs, cfg.ErrorAt("mqtt.tls", "%v", err))
		}
	}
	if err := checkWritableDir(cfg.StateDir); err != nil {
		errs = append(errs, cfg.ErrorAt("state_dir", "%v", err))
	}
	notes = append(notes, addedNotes(cfg)...)
	return errs, notes
}

// addedNotes tells --check about the labels added on the page: they run
// besides the file's, and one the file now names too is ignored.
func addedNotes(cfg *configs.Config) []string {
	added, err := readAddedLabels(cfg.StateDir)
	if err != nil {
		return []string{fmt.Sprintf("labels added on the page: %v (siglipd will move the file aside and run the file's labels)", err)}
	}
	var notes []string
	for _, a := range added {
		where := filepath.Join(cfg.StateDir, addedLabelsFile)
		switch _, ok := findLabel(cfg, a.Camera, a.Name); {
		case ok:
			notes = append(notes, fmt.Sprintf("label %q of camera %q was added on the page (%s) but the config file has it too: the file's runs", a.Name, a.Camera, where))
		case !slices.ContainsFunc(cfg.Cameras, func(c configs.Camera) bool { return c.Name == a.Camera }):
			notes = append(notes, fmt.Sprintf("label %q was added on the page for camera %q, which the config file no longer has: it does not run (%s)", a.Name, a.Camera, where))
		default:
			notes = append(notes, fmt.Sprintf("label %q of camera %q was added on the page (%s): prompts %q, threshold %g; remove it on the page",
				a.Name, a.Camera, where, a.Prompts, a.Threshold))
		}
	}
	return notes
}

// checkWritableDir reports whether dir is, or can be created as, a folder
// this process can write, without creating anything.
func checkWritableDir(dir string) error {
	d := dir
	for {
		st, err := os.Stat(d)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("%s is a file, not a folder", d)
		case err == nil:
			if err := writable(d); err != nil {
				if d == dir {
					return fmt.Errorf("%s: cannot write in it: %w", dir, err)
				}
				return fmt.Errorf("%s does not exist and cannot be created: cannot write in %s: %w", dir, d, err)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: %w", d, errors.Unwrap(err))
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("%s: no existing folder above it", dir)
		}
		d = parent
	}
}

// writable asks the kernel whether this process may create files in dir
// (access(2) with W_OK|X_OK), so --check creates nothing to find out.
func writable(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }
