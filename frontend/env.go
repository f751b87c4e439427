package frontend

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// Export is one MXFRONT_* variable a check hands to PROGRAM (Name without
// the prefix); the same names and values are fields of the pass line.
type Export struct{ Name, Value string }

// Exports renders the checks' results of v as MXFRONT_* variables, in a
// fixed order: the DNS lists' (when asked), then the greylist's.
func (v Verdict) Exports() []Export {
	var out []Export
	if r := v.DNS; r != nil {
		out = append(out, Export{"DNSBL", strings.Join(r.BlockedBy(), " ")},
			Export{"DNSWL", strings.Join(r.AllowedBy(), " ")},
			Export{"SCORE", strconv.Itoa(r.Score)})
	}
	if g := v.Greylist.String(); g != "" {
		out = append(out, Export{"GREYLIST", g})
	}
	if r := v.DNS; r != nil && r.RDNS != nil {
		out = append(out, Export{"RDNS", r.RDNS.String()})
	}
	return out
}

// Environ builds PROGRAM's environment from mxfront's own (base): systemd's
// LISTEN_* variables are dropped (the socket is on fds 0 and 1 now), the
// ucspi-tcp names are set when not already set (so qmail-smtpd works under
// inetd and systemd), and the verdict is exported under MXFRONT_*. Every
// value taken from the network is sanitised.
func Environ(base []string, remote, local netip.AddrPort, localHost string, v Verdict) []string {
	return NewBaseEnv(base).Environ(remote, local, localHost, v)
}

// BaseEnv is PROGRAM's base environment read once: serve mode starts a
// PROGRAM per client from the same base.
type BaseEnv struct {
	env []string
	set map[string]bool // names in env; read-only once made
}

// NewBaseEnv filters base (mxfront's own environment) as Environ does.
func NewBaseEnv(base []string) *BaseEnv {
	b := &BaseEnv{env: make([]string, 0, len(base)), set: make(map[string]bool, len(base))}
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "LISTEN_PID", name == "LISTEN_FDS", name == "LISTEN_FDNAMES":
			continue
		case strings.HasPrefix(name, "MXFRONT_"):
			continue // ours to set: never trust a value from outside
		}
		b.set[name] = true
		b.env = append(b.env, kv)
	}
	return b
}

// Environ is Environ for one client, from the base.
func (b *BaseEnv) Environ(remote, local netip.AddrPort, localHost string, v Verdict) []string {
	env := make([]string, len(b.env), len(b.env)+16)
	copy(env, b.env)
	// Each name below is added once: only the base can hold it already.
	add := func(name, value string) {
		if !b.set[name] {
			env = append(env, name+"="+sanitize.Text(value, sanitize.MaxField))
		}
	}
	// ucspi-tcp6 sets the TCP6* names beside the TCP* ones for IPv6.
	v6 := remote.IsValid() && remote.Addr().Unmap().Is6()
	both := func(name, value string) {
		add("TCP"+name, value)
		if v6 {
			add("TCP6"+name, value)
		}
	}
	if remote.IsValid() {
		proto := "TCP"
		if v6 {
			proto = "TCP6"
		}
		add("PROTO", proto)
		both("REMOTEIP", remote.Addr().Unmap().String())
		if remote.Port() != 0 {
			both("REMOTEPORT", strconv.Itoa(int(remote.Port())))
		}
	}
	if local.IsValid() {
		both("LOCALIP", local.Addr().Unmap().String())
		if local.Port() != 0 {
			both("LOCALPORT", strconv.Itoa(int(local.Port())))
		}
	}
	if localHost != "" {
		both("LOCALHOST", localHost)
	}
	if v.DNS != nil && v.DNS.RDNS != nil {
		// --rdns: TCPREMOTEHOST is the forward-confirmed name, or unset,
		// whatever the launcher set (tcpserver -h sets an unconfirmed one).
		if b.set["TCPREMOTEHOST"] || b.set["TCP6REMOTEHOST"] {
			env = slices.DeleteFunc(env, func(kv string) bool {
				return strings.HasPrefix(kv, "TCPREMOTEHOST=") || strings.HasPrefix(kv, "TCP6REMOTEHOST=")
			})
		}
		if h := v.DNS.RDNS.Host(); h != "" {
			env = append(env, "TCPREMOTEHOST="+h)
			if v6 {
				env = append(env, "TCP6REMOTEHOST="+h)
			}
		}
	}
	env = append(env, "MXFRONT_VERDICT="+v.Action.String())
	if r := v.Reason(); r != "" {
		env = append(env, "MXFRONT_REASON="+sanitize.Text(r, 1024))
	}
	for _, e := range v.Exports() {
		env = append(env, "MXFRONT_"+e.Name+"="+sanitize.Text(e.Value, 1024))
	}
	if v.Observed != nil {
		// --observe: what would have refused the client, for PROGRAM and
		// mxfilter to see; MXFRONT_VERDICT stays pass.
		env = append(env, "MXFRONT_WOULD_REFUSE="+sanitize.Text(v.Observed.Reply.String(), 1024))
	}
	return env
}
