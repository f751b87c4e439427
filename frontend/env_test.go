package frontend

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/dnsbl"
)

func TestEnviron(t *testing.T) {
	v := Verdict{Action: Trusted, Reasons: []string{"allow list 192.0.2.0/24 (f:1): bad\x00text"},
		DNS: &dnsbl.Result{Score: 3}}
	tests := []struct {
		name         string
		base         []string
		remote       string
		local        string
		want, absent []string
	}{
		{
			name:   "inetd: everything from the socket",
			base:   []string{"PATH=/bin", "LISTEN_PID=7", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "MXFRONT_VERDICT=forged"},
			remote: "192.0.2.7:4567", local: "198.51.100.1:25",
			want: []string{"PATH=/bin", "PROTO=TCP", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=4567",
				"TCPLOCALIP=198.51.100.1", "TCPLOCALPORT=25", "TCPLOCALHOST=mx.example.test",
				"MXFRONT_VERDICT=trusted", "MXFRONT_REASON=allow list 192.0.2.0/24 (f:1): bad?text", "MXFRONT_SCORE=3"},
			absent: []string{"LISTEN_PID=7", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "MXFRONT_VERDICT=forged", "TCP6REMOTEIP=192.0.2.7"},
		},
		{
			name:   "tcpserver's values are kept",
			base:   []string{"PROTO=TCP", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=1", "TCPLOCALHOST=0", "TCPREMOTEHOST=h.example"},
			remote: "192.0.2.7:4567", local: "198.51.100.1:25",
			want:   []string{"TCPREMOTEPORT=1", "TCPLOCALHOST=0", "TCPREMOTEHOST=h.example", "TCPLOCALPORT=25"},
			absent: []string{"TCPREMOTEPORT=4567", "TCPLOCALHOST=mx.example.test"},
		},
		{
			name:   "IPv6 as ucspi-tcp6",
			remote: "[2001:db8::7]:4567", local: "[2001:db8::1]:25",
			want: []string{"PROTO=TCP6", "TCPREMOTEIP=2001:db8::7", "TCP6REMOTEIP=2001:db8::7", "TCP6REMOTEPORT=4567",
				"TCPLOCALIP=2001:db8::1", "TCP6LOCALPORT=25"},
		},
		{
			name:   "mapped IPv4 is IPv4",
			remote: "[::ffff:192.0.2.7]:4567", local: "[::ffff:198.51.100.1]:25",
			want:   []string{"PROTO=TCP", "TCPREMOTEIP=192.0.2.7", "TCPLOCALIP=198.51.100.1"},
			absent: []string{"TCP6REMOTEIP=192.0.2.7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Environ(tt.base, netip.MustParseAddrPort(tt.remote), netip.MustParseAddrPort(tt.local), "mx.example.test", v)
			for _, w := range tt.want {
				if !slices.Contains(env, w) {
					t.Errorf("missing %q in %q", w, env)
				}
			}
			for _, a := range tt.absent {
				if slices.Contains(env, a) {
					t.Errorf("unexpected %q in %q", a, env)
				}
			}
			seen := map[string]bool{}
			for _, kv := range env {
				name, _, _ := strings.Cut(kv, "=")
				if seen[name] {
					t.Errorf("%s set twice in %q", name, env)
				}
				seen[name] = true
			}
		})
	}
}
