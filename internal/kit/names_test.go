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
