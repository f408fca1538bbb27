package kit

import "strings"

// formatNames are the names the config accepts besides a FourCC.
var formatNames = map[string]string{"mjpeg": "MJPG", "mjpg": "MJPG", "jpeg": "JPEG", "yuyv": "YUYV", "yuy2": "YUYV",
	"h264": "H264", "nv12": "NV12", "rgb3": "RGB3", "bgr3": "BGR3", "uyvy": "UYVY"}

// FourCC is the four-character code of a pixel format named as the config
// may name it (mjpeg, yuyv, …, or a FourCC, in any case); false when it is
// neither.
func FourCC(name string) (string, bool) {
	if f, ok := formatNames[strings.ToLower(name)]; ok {
		return f, true
	}
	if len(name) != 4 {
		return "", false
	}
	for _, c := range name {
		if c < ' ' || c > '~' {
			return "", false
		}
	}
	return strings.ToUpper(name), true
}
