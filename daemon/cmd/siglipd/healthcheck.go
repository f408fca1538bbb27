package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/configs"
)

// healthcheckMain is `siglipd healthcheck --config FILE`: asks the running
// daemon's /healthz (or /readyz) over loopback, for a container's
// HEALTHCHECK or a monitor that has no curl. Exit 0 healthy, 1 not.
func healthcheckMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd healthcheck", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.StringP("config", "c", "", "the daemon's configuration file (for http.listen and http.token)")
	ready := fs.Bool("ready", false, "ask /readyz (the broker is connected too) instead of /healthz (the process answers)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd healthcheck: %v (see siglipd healthcheck --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd healthcheck --config FILE [--ready] [--timeout 3s]\n\n%s", fs.FlagUsages())
		return exitOK
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "siglipd healthcheck: --config FILE is required")
		return exitUsage
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, url, code := askDaemon(ctx, "siglipd healthcheck", *configPath, path, stderr)
	if resp == nil {
		return code
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "siglipd healthcheck: %s: %s: %s\n", url, resp.Status, strings.Join(strings.Fields(string(body)), " "))
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, strings.TrimSpace(string(body)))
	return exitOK
}

// askDaemon GETs path from the daemon the config file describes, over
// loopback with its http.token: what healthcheck and search share. A nil
// response comes with the exit code, the reason written to stderr.
func askDaemon(ctx context.Context, cmd, configPath, path string, stderr io.Writer) (*http.Response, string, int) {
	cfg, err := configs.Load(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, "", exitUsage
	}
	if cfg.HTTP.Listen == "" {
		fmt.Fprintf(stderr, "%s: %s: http.listen is empty, so there is nothing to ask\n", cmd, configPath)
		return nil, "", exitUsage
	}
	url := "http://" + loopback(cfg.HTTP.Listen) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, "", exitUsage
	}
	if t := cfg.HTTP.Token.Reveal(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v (is the daemon running?)\n", cmd, url, err)
		return nil, "", exitFailure
	}
	return resp, url, exitOK
}

// loopback is the address to reach a server listening on listen from the
// same machine: an unspecified host (":8080", "0.0.0.0:8080", "[::]:8080")
// becomes 127.0.0.1 (or ::1).
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() == nil:
		host = "::1"
	case ip != nil && ip.IsUnspecified():
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
