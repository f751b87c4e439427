//go:build !linux

package dnsbl

import "net/netip"

// haveRawLink: elsewhere, every Check waits in Go's network poller.
const haveRawLink = false

func newRawLink([]netip.AddrPort) link { panic("dnsbl: no rawLink on this system") }
