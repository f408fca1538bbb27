// Command maxrss runs a command and writes its peak resident memory and
// CPU time to a file, for siglipd's cost tests: the kernel counts, in a
// child's peak, the memory of the process that spawned it (Go spawns with
// vfork, and the peak survives exec), so a big test process cannot measure
// its child itself; this small one can.
//
//	maxrss OUT COMMAND [ARG...]
//
// OUT gets "PEAK_BYTES CPU_NS WALL_NS"; the exit code is the command's.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: maxrss OUT COMMAND [ARG...]")
		os.Exit(125)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		fmt.Fprintln(os.Stderr, "maxrss:", err)
		os.Exit(125)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	out := fmt.Sprintf("%d %d %d\n", ru.Maxrss<<10, cpu.Nanoseconds(), wall.Nanoseconds()) // Maxrss: KiB on Linux
	if err := os.WriteFile(os.Args[1], []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "maxrss:", err)
		os.Exit(125)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
