package httpapi

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", now.Add(-time.Hour), false},
		{"15m", now.Add(-15 * time.Minute), false},
		{"2026-11-28T08:30:00Z", time.Date(2026, 11, 28, 8, 30, 0, 0, time.UTC), false},
		{"1795986399356", time.UnixMilli(1795986399356), false},
		{"-5m", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}
