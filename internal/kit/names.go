package kit

import (
	"fmt"
	"hash/crc32"
	"regexp"
	"strings"
)

// Slug is the topic-safe form of a label or camera name used in MQTT topics,
// Home Assistant ids and event ids: lower case, every run of characters
// other than a-z and 0-9 becomes one "_", no leading or trailing "_". So
// "Garage door open!" is "garage_door_open", and "+", "#" and "/" never
// reach a topic.
func Slug(name string) string {
	var b strings.Builder
	pendingSep := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if pendingSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingSep = false
			b.WriteRune(r)
			continue
		}
		pendingSep = true
	}
	if b.Len() == 0 {
		// A name with no ASCII letters or digits ("车") still needs a stable,
		// distinct topic level.
		return fmt.Sprintf("label_%08x", crc32.ChecksumIEEE([]byte(name)))
	}
	return b.String()
}

// modelIDRe is a Hugging Face model id: [owner/]name of letters, digits,
// "-", "_" and "."; the hub also refuses "--" and ".." in it.
var modelIDRe = regexp.MustCompile(`^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)

// ValidModelID reports whether id can be a Hugging Face model id
// ("name" or "owner/name").
func ValidModelID(id string) bool {
	return modelIDRe.MatchString(id) && !strings.Contains(id, "--") && !strings.Contains(id, "..")
}
