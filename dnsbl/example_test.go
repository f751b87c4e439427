package dnsbl_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/mxfront/mxfront/dnsbl"
)

// How a frontend uses the package: parse the flags' specs, check the
// client, log each failed zone, act on the outcome.
func Example() {
	bl, _ := dnsbl.ParseZone("zen.example=127.0.0.[2..11]*2", dnsbl.Block)
	wl, _ := dnsbl.ParseZone("list.dnswl.example=127.0.[0..255].[1;2;3]", dnsbl.Allow)
	servers, err := dnsbl.ServersFromResolvConf("/etc/resolv.conf")
	if err != nil {
		return
	}
	c, err := dnsbl.New(dnsbl.Config{Zones: []dnsbl.Zone{bl, wl}, Servers: servers})
	if err != nil {
		return
	}
	r := c.Check(context.Background(), netip.MustParseAddr("192.0.2.1"))
	for _, e := range r.Errors() {
		slog.Warn("DNS list failed", "ip", r.IP, "zone", e.Zone, "err", e)
	}
	switch r.Outcome(1, -1) {
	case dnsbl.Blocked:
		fmt.Println("554 5.7.1", r.Text)
	case dnsbl.Trusted:
		fmt.Println("trusted by", r.AllowedBy())
	default:
		if r.Failed() {
			fmt.Println("451 4.7.1 DNS lists unavailable") // only with --dns-fail tempfail
		}
	}
}
