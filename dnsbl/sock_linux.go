package dnsbl

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socket makes a non-blocking socket, closed on exec.
func socket(family, typ int) (int, error) {
	return syscall.Socket(family, typ|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
}

// interfaceIndex asks the kernel for the index of the interface called
// name (SIOCGIFINDEX, on any socket fd): one system call, where net reads
// the whole interface table; 0 when there is none.
func interfaceIndex(fd int, name string) uint32 {
	ifr, err := unix.NewIfreq(name)
	if err != nil || unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr) != nil {
		return 0
	}
	return ifr.Uint32()
}
