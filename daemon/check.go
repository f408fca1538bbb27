package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/publish"
	"golang.org/x/sys/unix"
)

// Check finds, for --check, what the daemon would refuse at start
// that configs.Validate cannot see because it needs the disk: the model
// folder, the ONNX Runtime library, the broker's TLS files and the state
// folder. It opens no network connection. Each problem names the file and
// line of the value behind it.
func Check(cfg *configs.Config, lib infer.LibraryChoice) configs.Errors {
	var errs configs.Errors
	if err := infer.Check(modelOptions(cfg, lib, nil)); err != nil {
		errs = append(errs, cfg.ErrorAt("model.path", "%v", err))
	}
	if _, err := infer.LoadRuntime(lib); err != nil {
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
	return errs
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
