//go:build !race

package daemon

const raceSlowdown = 1
