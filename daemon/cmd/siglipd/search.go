package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/daemon/httpapi"
)

// searchMain is `siglipd search --config FILE "a red car" [--since 24h]`:
// asks the running daemon's /api/search (the daemon holds the model and
// the frame store) and prints the moments found, best first.
func searchMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd search", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.StringP("config", "c", "", "the daemon's configuration file (for http.listen and http.token)")
	since := fs.String("since", "", "only frames from this long ago on (24h, 7d is 168h) or an RFC 3339 time")
	camera := fs.String("camera", "", "only this camera's frames")
	similar := fs.String("similar", "", "instead of a text, find frames like this stored frame (its id)")
	limit := fs.Int("limit", 20, "moments to show at most")
	floor := fs.Float64("floor", 0, "the probability (similarity for --similar) a frame needs to count; default the daemon's")
	asJSON := fs.Bool("json", false, "print /api/search's JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd search: %v (see siglipd search --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd search --config FILE [--since 24h] [--camera NAME] TEXT...\n"+
			"       siglipd search --config FILE --similar FRAME_ID\n\n%s", fs.FlagUsages())
		return exitOK
	}
	text := strings.TrimSpace(strings.Join(fs.Args(), " "))
	switch {
	case *configPath == "":
		fmt.Fprintln(stderr, "siglipd search: --config FILE is required")
		return exitUsage
	case text == "" && *similar == "":
		fmt.Fprintln(stderr, "siglipd search: give a text to search for, or --similar FRAME_ID")
		return exitUsage
	case text != "" && *similar != "":
		fmt.Fprintln(stderr, "siglipd search: give a text or --similar, not both")
		return exitUsage
	}
	q := url.Values{}
	if text != "" {
		q.Set("q", text)
	} else {
		q.Set("similar", *similar)
	}
	for k, v := range map[string]string{"since": *since, "camera": *camera} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", fmt.Sprint(*limit))
	if fs.Changed("floor") {
		q.Set("floor", fmt.Sprint(*floor))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	const path = "/api/search"
	resp, u, code := askDaemon(ctx, "siglipd search", *configPath, path+"?"+q.Encode(), stderr)
	if resp == nil {
		return code
	}
	base := u[:strings.Index(u, path)]
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintf(stderr, "siglipd search: %v\n", err)
		return exitFailure
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		fmt.Fprintf(stderr, "siglipd search: %s\n", strings.TrimSpace(string(body)))
		return exitUsage
	case resp.StatusCode == http.StatusNotFound && text != "":
		fmt.Fprintf(stderr, "siglipd search: the daemon has no frame store (store.enabled: false?): %s\n", strings.TrimSpace(string(body)))
		return exitFailure
	case resp.StatusCode != http.StatusOK:
		fmt.Fprintf(stderr, "siglipd search: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return exitFailure
	}
	if *asJSON {
		stdout.Write(body)
		return exitOK
	}
	var res httpapi.Search
	if err := json.Unmarshal(body, &res); err != nil {
		fmt.Fprintf(stderr, "siglipd search: the daemon's answer: %v\n", err)
		return exitFailure
	}
	printSearch(stdout, base, res)
	return exitOK
}

// printSearch writes the moments as a table, times in the local zone.
func printSearch(w io.Writer, base string, res httpapi.Search) {
	word := "probability"
	if res.Similar != "" {
		word = "similarity"
	}
	fmt.Fprintf(w, "%d moments in %d stored frames (%s ≥ %g, %.0f ms)\n", len(res.Moments), res.Searched, word, res.Floor, res.TookMS)
	if res.Loading {
		fmt.Fprintln(w, "(the frames of earlier runs are still being read: search again in a moment for all of them)")
	}
	if res.OtherModel > 0 {
		fmt.Fprintf(w, "(%d stored frames were embedded by another model and are not searched)\n", res.OtherModel)
	}
	if len(res.Moments) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tCAMERA\tSTART\tDURATION\tFRAMES\tBEST FRAME\tTHUMBNAIL\n", strings.ToUpper(word))
	for _, m := range res.Moments {
		score := m.Best.Probability
		if score == nil {
			score = m.Best.Similarity
		}
		s := "-"
		if score != nil {
			s = fmt.Sprintf("%.3f", *score)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s, m.Camera, m.Start.Local().Format("2006-01-02 15:04:05"),
			m.End.Sub(m.Start).Round(time.Second), m.Frames, m.Best.ID, base+m.Best.Thumbnail)
	}
	tw.Flush()
}
