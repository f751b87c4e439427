package serve

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SystemdListener is one listening socket systemd passed (Accept=no).
type SystemdListener struct {
	net.Listener
	Name string // FileDescriptorName=, or "" when systemd gave none
}

// SystemdListeners returns the sockets passed by systemd socket activation
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; fds from 3 on), or none when
// they are not for this process. Written here rather than with go-systemd's
// activation package, which links crypto/tls into every chain-mode start.
func SystemdListeners() ([]SystemdListener, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad LISTEN_FDS=%q", os.Getenv("LISTEN_FDS"))
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []SystemdListener
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		name := ""
		if i < len(names) {
			name = names[i]
		}
		f := os.NewFile(uintptr(fd), "systemd:"+name)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("systemd socket fd %d (%s): %v", fd, name, err)
		}
		out = append(out, SystemdListener{Listener: l, Name: name})
	}
	return out, nil
}
