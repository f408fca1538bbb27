//go:build race

package configs

// raceSlowdown: the race detector makes Parse several times slower.
const raceSlowdown = 10
