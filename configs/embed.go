package configs

import _ "embed"

// Example is configs/cams.yaml, the documented example configuration.
//
//go:embed cams.yaml
var Example []byte

// Demo is configs/demo.yaml, the configuration `make demo` runs.
//
//go:embed demo.yaml
var Demo []byte
