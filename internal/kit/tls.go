package kit

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// TLSFiles are the files of a TLS connection (to the broker, or the
// inference server), as a config names them.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool
}

// Load reads the files into settings for a connection, at each call (so a
// renewed certificate is picked up by the next connection). nil means the
// defaults: the system's roots, no client certificate.
func (t TLSFiles) Load() (*tls.Config, error) {
	if t.CAFile == "" && t.CertFile == "" && !t.InsecureSkipVerify {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: CA file %s: %w", t.CAFile, UnwrapPath(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: CA file %s: no PEM certificate in it", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: client certificate %s and key %s: %w", t.CertFile, t.KeyFile, UnwrapPath(err))
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// UnwrapPath drops the path an os error repeats, for messages that
// already name the file: "open: no such file or directory".
func UnwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
