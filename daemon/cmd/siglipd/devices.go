package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/internal/kit"
)

// devicesMain is `siglipd devices`: the video devices of this machine with
// their stable names, formats, sizes and frame rates, and a `cameras:`
// entry for each, ready to paste: what a user runs first on a new box.
// Exit 0 also when there are none (it says so).
func devicesMain(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("siglipd devices", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dev := fs.String("dev", "/dev", "the folder of the device nodes")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd devices: %v (see siglipd devices --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: siglipd devices\n\n%s", fs.FlagUsages())
		return exitOK
	}
	devices := capture.Devices(*dev)
	if len(devices) == 0 {
		fmt.Fprintf(stdout, "no video devices in %s: plug a USB camera in (and see dmesg), or, in a container, pass it with --device\n", *dev)
		return exitOK
	}
	var entries []string
	for _, d := range devices {
		fmt.Fprintf(stdout, "%s", d.Node)
		if d.Card != "" {
			fmt.Fprintf(stdout, "  %s (%s, %s)", d.Card, d.Driver, d.BusInfo)
		}
		fmt.Fprintln(stdout)
		if d.ByID != "" {
			fmt.Fprintf(stdout, "  by-id:   %s\n", d.ByID)
		}
		if d.ByPath != "" {
			fmt.Fprintf(stdout, "  by-path: %s\n", d.ByPath)
		}
		if d.Err != nil {
			fmt.Fprintf(stdout, "  cannot be asked: %v\n", d.Err)
			continue
		}
		printModes(stdout, d.Modes)
		if m, ok := d.Suggested(); ok {
			entries = append(entries, cameraEntry(d, m, len(entries)))
		}
	}
	if len(entries) > 0 {
		fmt.Fprintf(stdout, "\ncameras:\n%s", strings.Join(entries, ""))
	}
	return exitOK
}

// printModes writes one line per format: its sizes and their rates.
func printModes(w io.Writer, modes []capture.Mode) {
	type size struct{ w, h int }
	var order []string
	sizes := map[string][]size{}
	rates := map[string]map[size][]string{}
	for _, m := range modes {
		if _, ok := sizes[m.Format]; !ok {
			order = append(order, m.Format)
			rates[m.Format] = map[size][]string{}
		}
		s := size{m.Width, m.Height}
		if _, ok := rates[m.Format][s]; !ok {
			sizes[m.Format] = append(sizes[m.Format], s)
		}
		if m.FPS > 0 {
			rates[m.Format][s] = append(rates[m.Format][s], fmt.Sprintf("%g", m.FPS))
		}
	}
	for _, f := range order {
		var parts []string
		for _, s := range sizes[f] {
			p := fmt.Sprintf("%dx%d", s.w, s.h)
			if r := rates[f][s]; len(r) > 0 {
				p += " @ " + strings.Join(r, "/") + " fps"
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "  %-4s  %s\n", f, strings.Join(parts, ", "))
	}
}

// cameraEntry is a `cameras:` list item for the device in its suggested
// mode, sampled at 2 fps, with a label to start from.
func cameraEntry(d capture.Device, m capture.Mode, i int) string {
	name := strings.Trim(strings.ReplaceAll(kit.Slug(d.Card), "_", "-"), "-")
	name = strings.Trim(name[:min(len(name), 40)], "-")
	if name == "" {
		name = "usb"
	}
	name = fmt.Sprintf("%s-%d", name, i+1) // a camera name: letters, digits, - (configs' cameraNameRe)
	format := strings.ToLower(m.Format)
	if m.Format == "MJPG" {
		format = "mjpeg"
	}
	e := fmt.Sprintf("  - name: %s\n    url: %s\n    format: %s\n    width: %d\n    height: %d\n", name, d.URL(), format, m.Width, m.Height)
	if m.FPS > 0 {
		e += fmt.Sprintf("    frame_rate: %g\n", m.FPS)
	}
	return e + "    fps: 2\n    labels:\n      - name: person\n        prompts: [\"a person\"]\n"
}
