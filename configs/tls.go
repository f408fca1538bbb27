package configs

import (
	"crypto/tls"

	"github.com/siglipd/siglipd/internal/kit"
)

// Load reads the TLS files into settings for a connection (see
// kit.TLSFiles.Load); nil means the defaults.
func (t TLS) Load() (*tls.Config, error) { return t.Files().Load() }

// Files are t's files, as kit takes them.
func (t TLS) Files() kit.TLSFiles {
	return kit.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify}
}
