//go:build unix && !linux

package dnsbl

import "syscall"

// socket makes a non-blocking socket, closed on exec, without the flags
// that not every system's socket(2) takes (as net does it).
func socket(family, typ int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(family, typ, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// interfaceIndex: no lookup by name here, where an IPv6 zone must be given
// as a number (fe80::1%2).
func interfaceIndex(int, string) uint32 { return 0 }
