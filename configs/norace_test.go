//go:build !race

package configs

const raceSlowdown = 1
