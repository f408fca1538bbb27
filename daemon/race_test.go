//go:build race

package daemon

// raceSlowdown: the race detector makes the daemon several times slower.
const raceSlowdown = 10
