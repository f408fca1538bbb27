package testenv

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// WriteMJPEG streams JPEG frames as multipart/x-mixed-replace, the way IP
// cameras serve /mjpg: frame(i) is the i-th picture, one every interval,
// until the client goes away or frame fails. Handlers check their
// credentials first, then call it.
func WriteMJPEG(w http.ResponseWriter, r *http.Request, every time.Duration, frame func(i int) ([]byte, error)) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=frame")
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		jpg, err := frame(i)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(jpg))
		w.Write(jpg)
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
