package frontend

import (
	"net/netip"
	"strconv"
	"strings"
)

// Export is one MXFRONT_* variable a check hands to PROGRAM.
type Export struct{ Name, Value string }

// Environ builds PROGRAM's environment from mxfront's own (base): systemd's
// LISTEN_* variables are dropped (the socket is on fds 0 and 1 now), the
// ucspi-tcp names are set when not already set (so qmail-smtpd works under
// inetd and systemd), and the verdict is exported under MXFRONT_*. Every
// value taken from the network is sanitised.
func Environ(base []string, remote, local netip.AddrPort, localHost string, v Verdict) []string {
	env := make([]string, 0, len(base)+16)
	set := make(map[string]bool, len(base))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "LISTEN_PID", name == "LISTEN_FDS", name == "LISTEN_FDNAMES":
			continue
		case strings.HasPrefix(name, "MXFRONT_"):
			continue // ours to set: never trust a value from outside
		}
		set[name] = true
		env = append(env, kv)
	}
	add := func(name, value string) {
		if !set[name] {
			env = append(env, name+"="+Sanitize(value, maxField))
			set[name] = true
		}
	}
	if remote.IsValid() {
		proto := "TCP"
		if remote.Addr().Unmap().Is6() {
			proto = "TCP6"
		}
		add("PROTO", proto)
		add("TCPREMOTEIP", remote.Addr().Unmap().String())
		add("TCPREMOTEPORT", strconv.Itoa(int(remote.Port())))
	}
	if local.IsValid() {
		add("TCPLOCALIP", local.Addr().Unmap().String())
		add("TCPLOCALPORT", strconv.Itoa(int(local.Port())))
	}
	if localHost != "" {
		add("TCPLOCALHOST", localHost)
	}
	env = append(env, "MXFRONT_VERDICT="+v.Action.String())
	if r := v.Reason(); r != "" {
		env = append(env, "MXFRONT_REASON="+Sanitize(r, 1024))
	}
	for _, e := range v.Exports {
		env = append(env, "MXFRONT_"+e.Name+"="+Sanitize(e.Value, 1024))
	}
	return env
}
