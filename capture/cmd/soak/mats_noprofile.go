//go:build !matprofile

package main

// matCount is unknown without -tags matprofile.
func matCount() string { return "-" }
