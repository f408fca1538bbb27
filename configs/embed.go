package configs

import _ "embed"

// Example is configs/cams.yaml, the documented example configuration.
//
//go:embed cams.yaml
var Example []byte
