package kit

import (
	"strings"
	"testing"
)

func TestSlug(t *testing.T) {
	tests := []struct{ in, want string }{
		{"garage door open", "garage_door_open"},
		{"A car + truck / #1", "a_car_truck_1"},
		{"  person  ", "person"},
		{"Garage door open!", "garage_door_open"},
	}
	for _, tt := range tests {
		if got := Slug(tt.in); got != tt.want {
			t.Errorf("Slug(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Names without ASCII letters or digits still get distinct slugs.
	if a, b := Slug("车"), Slug("猫"); a == b || !strings.HasPrefix(a, "label_") {
		t.Errorf("Slug(车) = %q, Slug(猫) = %q: want distinct label_ slugs", a, b)
	}
}

func TestValidModelID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"Xenova/siglip-base-patch16-224", true},
		{"google/siglip2-base-patch16-224", true},
		{"siglip", true},
		{"", false},
		{"a/b/c", false},
		{"owner/na--me", false},
		{"owner/..", false},
		{"-owner/name", false},
		{"owner/name with space", false},
	}
	for _, tt := range tests {
		if got := ValidModelID(tt.id); got != tt.want {
			t.Errorf("ValidModelID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestFourCC(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"mjpeg", "MJPG", true}, {"MJPEG", "MJPG", true}, {"yuyv", "YUYV", true}, {"YUY2", "YUYV", true},
		{"h264", "H264", true}, {"grey", "GREY", true}, {"Y16 ", "Y16 ", true},
		{"", "", false}, {"jpegs", "", false}, {"ab\x00c", "", false},
	} {
		if got, ok := FourCC(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("FourCC(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
