// Command goexec is the smallest Go program that only execs its arguments:
// the benchmark's floor for any Go program in a tcpserver chain (one Go
// runtime start per connection, nothing else).
package main

import (
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(100)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		os.Exit(111)
	}
	syscall.Exec(path, os.Args[1:], os.Environ())
	os.Exit(111)
}
