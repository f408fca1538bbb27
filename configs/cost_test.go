package configs

import (
	"bytes"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// Bounds on what one file within the read limit may cost Parse: siglipd
// runs on edge boxes of 4 GB, and a reload (a bad save of a watched file)
// must not take the daemon down. testenv.RaceSlowdown widens the time bound under
// -race.
const (
	maxParseTime  = time.Second
	maxParseAlloc = 100 << 20
)

// parseCost parses data once and returns how long it took, the bytes it
// allocated (more than the heap grew by: garbage counts too) and its error.
func parseCost(data []byte) (time.Duration, uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Parse("cams.yaml", data, env(nil))
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return took, after.TotalAlloc - before.TotalAlloc, err
}

// prescanned is the longest start of data that prescan lets through: the
// costliest file of that shape the parsers see.
func prescanned(data []byte) []byte {
	n := sort.Search(len(data)+1, func(n int) bool {
		_, err := prescan("cams.yaml", data[:n])
		return err != nil
	})
	return data[:max(n-1, 0)]
}

// forGoccy is the longest start of data that goccy/go-yaml still reads
// (goccyMaxBytes, goccyMaxNodes), ended by a syntax error so that it does.
func forGoccy(data []byte) []byte {
	const tab = "\n\tx: 1\n"
	data = data[:min(len(data), goccyMaxBytes-len(tab))]
	n := sort.Search(len(data)+1, func(n int) bool {
		nodes, err := prescan("cams.yaml", data[:n])
		return err != nil || nodes > goccyMaxNodes-10 // room for the tab's
	})
	return append(data[:max(n-1, 0):max(n-1, 0)], tab...)
}

// TestParseCost: every hostile file (deep nesting, alias and merge bombs,
// very many keys, errors or documents, very long lines) is rejected within
// maxParseTime and maxParseAlloc, with an error of readable length; so is
// the longest start of it that gets past prescan.
func TestParseCost(t *testing.T) {
	if testenv.HostileSize != MaxFileSize {
		t.Fatalf("testenv.HostileSize %d is not MaxFileSize %d", testenv.HostileSize, MaxFileSize)
	}
	check := func(t *testing.T, data []byte, mustFail bool) {
		if len(data) > MaxFileSize {
			t.Fatalf("the file is %d bytes, more than the read limit", len(data))
		}
		took, alloc, err := parseCost(data)
		t.Logf("%d bytes: %s, %.1f MB allocated", len(data), took.Round(time.Microsecond), float64(alloc)/(1<<20))
		if took > maxParseTime*testenv.RaceSlowdown {
			t.Errorf("Parse took %s, more than %s", took, maxParseTime*testenv.RaceSlowdown)
		}
		if alloc > maxParseAlloc {
			t.Errorf("Parse allocated %d MB, more than %d MB", alloc>>20, maxParseAlloc>>20)
		}
		if err == nil {
			if mustFail {
				t.Error("Parse accepted it")
			}
			return
		}
		msg := err.Error()
		if n := strings.Count(msg, "\n") + 1; n > MaxReported+5 {
			t.Errorf("the error has %d lines", n)
		}
		for i, line := range strings.Split(msg, "\n") {
			if n := len([]rune(line)); n > 400 {
				t.Errorf("line %d of the error is %d characters: %.200s…", i+1, n, line)
			}
		}
		first, _, _ := strings.Cut(msg, "\n")
		t.Logf("first error: %s", first)
	}
	for _, h := range testenv.HostileConfigs(base, MaxDepth) {
		t.Run(h.Name, func(t *testing.T) {
			check(t, h.Data, true)
			if cut := prescanned(h.Data); len(cut) > len(base) && !bytes.Equal(cut, h.Data) {
				t.Run("cut to what prescan lets through", func(t *testing.T) { check(t, cut, false) })
			}
			t.Run("cut to what goccy reads, then a syntax error", func(t *testing.T) {
				data := forGoccy(h.Data)
				if nodes, err := prescan("cams.yaml", data); err == nil && (nodes > goccyMaxNodes || len(data) > goccyMaxBytes) {
					t.Fatalf("%d bytes, %d values: more than goccy reads", len(data), nodes)
				}
				check(t, data, true)
			})
		})
	}
}
