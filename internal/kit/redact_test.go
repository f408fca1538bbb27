package kit

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:hunter2@10.0.0.2:554/live", "rtsp://admin:***@10.0.0.2:554/live"},
		{"rtsp://10.0.0.2/live", "rtsp://10.0.0.2/live"},
		{"rtsp://:p@ss@host/x", "rtsp://:***@host/x"},
		{`open "rtsps://u:p%40x@cam/1" failed`, `open "rtsps://u:***@cam/1" failed`},
		{"/videos/door.mp4", "/videos/door.mp4"},
		// Credentials in the query string, as cheap HTTP cameras take them.
		{"http://cam/video.mjpg?user=admin&pwd=S3cret", "http://cam/video.mjpg?user=admin&pwd=***"},
		{"http://cam/snap.cgi?PassWord=S3cret&chn=1", "http://cam/snap.cgi?PassWord=***&chn=1"},
		{"http://cam/x?api_key=abc;access_token=def&sig=0a1b#frag", "http://cam/x?api_key=***;access_token=***&sig=***#frag"},
		{"https://u:p@cam/live.m3u8?X-Amz-Signature=ff&X-Amz-Credential=me", "https://u:***@cam/live.m3u8?X-Amz-Signature=***&X-Amz-Credential=***"},
		{`err="open http://cam/v?pwd=S3cret failed"`, `err="open http://cam/v?pwd=*** failed"`},
		{"http://cam/v?pwd=&user=a", "http://cam/v?pwd=&user=a"}, // nothing to hide
		{"http://cam/v?channel=1&subtype=0", "http://cam/v?channel=1&subtype=0"},
		{"a password: none", "a password: none"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
