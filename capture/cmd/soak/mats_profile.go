//go:build matprofile

package main

import (
	"strconv"

	"gocv.io/x/gocv"
)

// matCount is gocv's count of open Mats (built with -tags matprofile).
func matCount() string { return strconv.Itoa(gocv.MatProfile.Count()) }
