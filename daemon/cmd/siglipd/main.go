// Command siglipd is the zero-shot camera classifier daemon; see the README.
package main

import (
	"os"

	"github.com/siglipd/siglipd/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
