package serve

import (
	"context"
	"encoding/binary"
	"net/netip"

	"github.com/mxfront/mxfront/greylist"
)

// proxyV2 is a PROXY v2 header: command, family and protocol, addresses.
func proxyV2(cmd, fam byte, addrs []byte) []byte {
	h := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(addrs)))
	return append(h, addrs...)
}

// panicStore is a greylist store with a bug: every read panics.
type panicStore struct{ greylist.Store }

func (panicStore) Get(context.Context, netip.Prefix) (greylist.Record, error) {
	panic("bug in a check")
}
