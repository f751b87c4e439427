// Package proxy reads the PROXY protocol (haproxy's proxy-protocol.txt, v1
// text and v2 binary), which tells mxfront who the client behind a load
// balancer is. A header is read without reading a byte past it, so that
// everything the client sent after it is still in the socket for the
// dialogue or for PROGRAM: v1 a byte at a time up to its LF (at most 107
// bytes), v2 its 16 fixed bytes, then exactly the length they declare.
// Written here rather than with go-proxyproto, whose buffered reader would
// have to be handed to PROGRAM, which only gets fds.
package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// Header is what a PROXY header says of the connection.
type Header struct {
	// Source is the client, Dest the address it connected to. Both are
	// invalid for v1 "UNKNOWN", a v2 LOCAL command (a health check from
	// the proxy itself) or an address family other than TCP over IPv4/6:
	// the connection's own addresses stand.
	Source, Dest netip.AddrPort
	Version      int // 1 or 2
}

const (
	proxyV1Max  = 107 // "PROXY TCP6 " + two IPv6, two ports, CRLF
	proxyV1Min  = 15  // "PROXY UNKNOWN\r\n": read this much at once
	proxyV2Head = 16
	proxyV2Max  = 16 + 65535
)

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// ErrNoHeader means the connection did not start with a PROXY header.
var ErrNoHeader = errors.New("no PROXY header")

// Read reads one PROXY header (v1 or v2) from r and not a byte
// more.
func Read(r io.Reader) (Header, error) {
	buf := make([]byte, proxyV1Min, proxyV1Max)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Header{}, fmt.Errorf("PROXY header: %w", err)
	}
	switch {
	case bytes.HasPrefix(buf, []byte("PROXY ")):
		return readProxyV1(r, buf)
	case bytes.Equal(buf[:len(proxyV2Sig)], proxyV2Sig):
		return readProxyV2(r, buf)
	}
	return Header{}, ErrNoHeader
}

func readProxyV1(r io.Reader, buf []byte) (Header, error) {
	var b [1]byte
	for buf[len(buf)-1] != '\n' {
		if len(buf) == proxyV1Max {
			return Header{}, errors.New("PROXY v1 header: no CRLF within 107 bytes")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("PROXY v1 header: %w", err)
		}
		buf = append(buf, b[0])
	}
	return ParseV1(string(buf))
}

// ParseV1 parses a whole v1 line, CRLF included.
func ParseV1(line string) (Header, error) {
	body, ok := strings.CutSuffix(line, "\r\n")
	if !ok || len(line) > proxyV1Max || !strings.HasPrefix(body, "PROXY ") {
		return Header{}, fmt.Errorf("PROXY v1 header: bad line %q", sanitize.Text(line, 120))
	}
	f := strings.Split(body, " ")
	if f[1] == "UNKNOWN" {
		return Header{Version: 1}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, fmt.Errorf("PROXY v1 header: bad line %q", sanitize.Text(line, 120))
	}
	src, err1 := proxyV1Addr(f[2], f[4], f[1] == "TCP6")
	dst, err2 := proxyV1Addr(f[3], f[5], f[1] == "TCP6")
	if err := errors.Join(err1, err2, usableSource(src)); err != nil {
		return Header{}, fmt.Errorf("PROXY v1 header: %v", err)
	}
	return Header{Source: src, Dest: dst, Version: 1}, nil
}

// usableSource refuses a client no TCP connection comes from: the
// unspecified address (0.0.0.0, ::) or port 0. A proxy that does not know
// the client sends UNKNOWN or LOCAL instead.
func usableSource(src netip.AddrPort) error {
	if src.Addr().IsUnspecified() || src.Port() == 0 {
		return fmt.Errorf("unusable source %v", src)
	}
	return nil
}

func proxyV1Addr(ip, port string, v6 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is6() != v6 || (v6 && a.Is4In6()) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", sanitize.Text(ip, 50))
	}
	// Ports are decimal without a sign or a leading zero.
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') || port[0] == '+' {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", sanitize.Text(port, 10))
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func readProxyV2(r io.Reader, buf []byte) (Header, error) {
	buf = buf[:proxyV2Head]
	if _, err := io.ReadFull(r, buf[proxyV1Min:]); err != nil {
		return Header{}, fmt.Errorf("PROXY v2 header: %w", err)
	}
	n := int(binary.BigEndian.Uint16(buf[14:16]))
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		return Header{}, fmt.Errorf("PROXY v2 header: %w", err)
	}
	return ParseV2(append(buf, rest...))
}

// ParseV2 parses a whole v2 header: the 16 fixed bytes and the length
// they declare, nothing more.
func ParseV2(h []byte) (Header, error) {
	if len(h) < proxyV2Head || !bytes.Equal(h[:12], proxyV2Sig) {
		return Header{}, errors.New("PROXY v2 header: bad signature")
	}
	if n := int(binary.BigEndian.Uint16(h[14:16])); len(h) != proxyV2Head+n {
		return Header{}, fmt.Errorf("PROXY v2 header: %d bytes, declared %d", len(h)-proxyV2Head, n)
	}
	if h[12]>>4 != 2 {
		return Header{}, fmt.Errorf("PROXY v2 header: version %d", h[12]>>4)
	}
	addrs := h[proxyV2Head:]
	switch h[12] & 0xf {
	case 0: // LOCAL: the proxy's own connection (a health check)
		return Header{Version: 2}, nil
	case 1: // PROXY
	default:
		return Header{}, fmt.Errorf("PROXY v2 header: command %d", h[12]&0xf)
	}
	switch h[13] {
	case 0x11: // TCP over IPv4
		if len(addrs) < 12 {
			return Header{}, errors.New("PROXY v2 header: short IPv4 addresses")
		}
		src := netip.AddrFrom4([4]byte(addrs[0:4]))
		dst := netip.AddrFrom4([4]byte(addrs[4:8]))
		return v2Header(netip.AddrPortFrom(src, binary.BigEndian.Uint16(addrs[8:10])),
			netip.AddrPortFrom(dst, binary.BigEndian.Uint16(addrs[10:12])))
	case 0x21: // TCP over IPv6
		if len(addrs) < 36 {
			return Header{}, errors.New("PROXY v2 header: short IPv6 addresses")
		}
		src := netip.AddrFrom16([16]byte(addrs[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(addrs[16:32])).Unmap()
		return v2Header(netip.AddrPortFrom(src, binary.BigEndian.Uint16(addrs[32:34])),
			netip.AddrPortFrom(dst, binary.BigEndian.Uint16(addrs[34:36])))
	}
	// UNSPEC, UDP, unix sockets: nothing usable; the connection's own
	// addresses stand, as the specification asks.
	return Header{Version: 2}, nil
}

func v2Header(src, dst netip.AddrPort) (Header, error) {
	if err := usableSource(src); err != nil {
		return Header{}, fmt.Errorf("PROXY v2 header: %v", err)
	}
	return Header{Version: 2, Source: src, Dest: dst}, nil
}

// LooksLike reports whether b (what a client sent first) is the start
// of a PROXY header.
func LooksLike(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, p := range [][]byte{[]byte("PROXY "), proxyV2Sig} {
		n := min(len(b), len(p))
		if bytes.Equal(b[:n], p[:n]) {
			return true
		}
	}
	return false
}
