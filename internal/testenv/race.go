//go:build race

package testenv

// Race is true when the tests are built with -race: the race detector slows
// Go code several times over, so tests skip assertions on rates and
// latencies under it (and check them in the normal pass).
const Race = true

// RaceSlowdown widens a time bound under -race, where code runs several
// times slower; 1 otherwise.
const RaceSlowdown = 10
