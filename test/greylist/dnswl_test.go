package greylist_test

import (
	"path/filepath"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// A client a DNS allow list (rbldnsd) vouches for is trusted and never
// greylisted: its first attempt delivers, and the database learns nothing
// of it; a client on no list is greylisted as usual. Through tcpserver
// (chain mode) and mxfront serve.
func TestDNSAllowListSkipsGreylist(t *testing.T) {
	b := build(t)
	wl := testpeer.StartRbldnsd(t, testpeer.RbldnsdZone{Name: "wl.test", Type: "ip4set", Data: "127.0.0.40/29 :127.0.0.2:vouched for\n127.0.0.2\n"}) // 127.0.0.2: the RFC 5782 test point serve's health check asks
	for _, mode := range []string{"tcpserver", "serve"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "greylist.db")
			spool := filepath.Join(dir, "spool")
			flags := []string{"--greylist", "--greylist-db", db, "--dns-server", wl.Addr, "--dnswl", "wl.test", "--hostname", "mx.example.test"}
			var addr string
			if mode == "tcpserver" {
				addr, _ = tcpserver(t, append(append([]string{b.mxfront}, flags...), "--", b.mxsink, "-spool", spool)...)
			} else {
				addr, _ = serve(t, b, append(flags, "--", b.mxsink, "-spool", spool)...)
			}
			out, code := swaks(t, addr, "127.0.0.41")
			mustPass(t, out, code, "a client on the DNS allow list")
			msgs := spooled(t, spool)
			if len(msgs) != 1 || envHeader(msgs[0], "MXFRONT_VERDICT") != "trusted" || envHeader(msgs[0], "MXFRONT_DNSWL") != "wl.test" {
				t.Fatalf("PROGRAM's environment: %v", msgs)
			}
			if envHeader(msgs[0], "MXFRONT_GREYLIST") != "" {
				t.Fatalf("a trusted client went through the greylist: %s", msgs[0])
			}
			if got := listed(t, b, db); len(got) != 0 {
				t.Fatalf("the greylist recorded a trusted client: %v", got)
			}
			out, code = swaks(t, addr, "127.0.0.60")
			mustGreylisted(t, out, code, "a client on no list")
			if got := listed(t, b, db); got["127.0.0.0/24"] != "pending" {
				t.Fatalf("greylist after an unlisted client: %v", got)
			}
		})
	}
}
