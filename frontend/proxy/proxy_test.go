package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func proxyV2(cmd, fam byte, addrs []byte) []byte {
	h := append([]byte(nil), proxyV2Sig...)
	h = append(h, 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(addrs)))
	return append(h, addrs...)
}

var (
	v2tcp4 = proxyV2(1, 0x11, []byte{192, 0, 2, 7, 198, 51, 100, 1, 0x30, 0x39, 0, 25})
	v2tcp6 = proxyV2(1, 0x21, append(append(netip.MustParseAddr("2001:db8::7").AsSlice(),
		netip.MustParseAddr("2001:db8::25").AsSlice()...), 0x30, 0x39, 0, 25))
	// A TCP4 header with a TLV after the addresses (haproxy sends some).
	v2tlv = proxyV2(1, 0x11, []byte{192, 0, 2, 7, 198, 51, 100, 1, 0x30, 0x39, 0, 25, 0x04, 0, 1, 'x'})
)

func TestRead(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name     string
		in       []byte
		src, dst string // "" : invalid (the connection's own addresses stand)
		err      string
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 25\r\n"), "192.0.2.7:12345", "198.51.100.1:25", ""},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::25 12345 25\r\n"), "[2001:db8::7]:12345", "[2001:db8::25]:25", ""},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", "", ""},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ::1 ::1 1 2\r\n"), "", "", ""},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", ""},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::7 2001:db8::25 1 25\r\n"), "", "", "bad address"},
		{"v1 port leading zero", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 012 25\r\n"), "", "", "bad port"},
		{"v1 port too big", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n"), "", "", "bad port"},
		{"v1 bare LF", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n"), "", "", "bad line"},
		{"v1 no end", []byte("PROXY TCP4 " + strings.Repeat("1", 200)), "", "", "no CRLF within 107"},
		{"v1 short", []byte("PROXY TCP4\r\n"), "", "", "bad line"},
		{"v1 extra field", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1 25 x\r\n"), "", "", "bad line"},
		{"smtp", []byte("EHLO client.example\r\n"), "", "", "no PROXY header"},
		{"v2 tcp4", v2tcp4, "192.0.2.7:12345", "198.51.100.1:25", ""},
		{"v2 tcp6", v2tcp6, "[2001:db8::7]:12345", "[2001:db8::25]:25", ""},
		{"v2 tlv", v2tlv, "192.0.2.7:12345", "198.51.100.1:25", ""},
		{"v2 local", proxyV2(0, 0x00, nil), "", "", ""},
		{"v2 unspec", proxyV2(1, 0x00, nil), "", "", ""},
		{"v2 udp", proxyV2(1, 0x12, make([]byte, 12)), "", "", ""},
		{"v2 short addresses", proxyV2(1, 0x11, make([]byte, 8)), "", "", "short IPv4"},
		{"v2 bad command", proxyV2(7, 0x11, make([]byte, 12)), "", "", "command 7"},
		{"v2 truncated", append(proxyV2(1, 0x11, nil)[:14], 0x01, 0xf4, 192, 0, 2, 7), "", "", "unexpected EOF"},
		{"v1 unspecified source", []byte("PROXY TCP4 0.0.0.0 198.51.100.1 1 25\r\n"), "", "", "unusable source"},
		{"v1 source port 0", []byte("PROXY TCP6 2001:db8::7 2001:db8::25 0 25\r\n"), "", "", "unusable source"},
		{"v2 source 0.0.0.0:0", proxyV2(1, 0x11, []byte{0, 0, 0, 0, 198, 51, 100, 1, 0, 0, 0, 25}), "", "", "unusable source 0.0.0.0:0"},
		{"v2 source [::]:25", proxyV2(1, 0x21, append(make([]byte, 16), append(netip.MustParseAddr("2001:db8::25").AsSlice(), 0, 25, 0, 25)...)), "", "", "unusable source"},
		{"v2 bad version", append(append([]byte(nil), proxyV2Sig...), 0x11, 0x11, 0, 0), "", "", "version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The SMTP stream that follows must be left unread.
			const after = "EHLO client.example\r\n"
			r := bytes.NewReader(append(append([]byte(nil), tc.in...), after...))
			h, err := Read(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != after {
				t.Errorf("left %q after the header, want %q", rest, after)
			}
			want := func(s string) netip.AddrPort {
				if s == "" {
					return netip.AddrPort{}
				}
				return ap(s)
			}
			if h.Source != want(tc.src) || h.Dest != want(tc.dst) {
				t.Errorf("got %v -> %v, want %s -> %s", h.Source, h.Dest, tc.src, tc.dst)
			}
		})
	}
}

func TestLooksLikeProxy(t *testing.T) {
	for in, want := range map[string]bool{
		"PROXY TCP4 1.2.3.4": true, "PRO": true, string(proxyV2Sig[:5]): true, string(v2tcp4): true,
		"EHLO x": false, "": false, "\r\n\r\nX": false,
	} {
		if got := LooksLike([]byte(in)); got != want {
			t.Errorf("LooksLike(%q) = %v", in, got)
		}
	}
}

// oneByteReader hands out a byte per Read, as a slow network might.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(b []byte) (int, error) {
	if len(b) > 1 {
		b = b[:1]
	}
	return o.r.Read(b)
}

// FuzzProxy: no panic; a header read never consumes more than its own
// bytes (v1 at most 107 and ending in CRLF, v2 16 plus its declared
// length), whatever the reads return at a time; an accepted header has
// valid addresses or none.
func FuzzProxy(f *testing.F) {
	for _, s := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 25\r\nEHLO x\r\n"),
		[]byte("PROXY TCP6 2001:db8::7 2001:db8::25 12345 25\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		v2tcp4, v2tcp6, v2tlv, proxyV2(0, 0, nil),
		[]byte("EHLO x\r\n"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, slow := range []bool{false, true} {
			br := bytes.NewReader(in)
			var r io.Reader = br
			if slow {
				r = oneByteReader{br}
			}
			h, err := Read(r)
			used := len(in) - br.Len()
			if err != nil {
				if errors.Is(err, ErrNoHeader) && used != proxyV1Min {
					t.Fatalf("read %d bytes to find no header", used)
				}
				continue
			}
			switch h.Version {
			case 1:
				if used > proxyV1Max || !bytes.HasSuffix(in[:used], []byte("\r\n")) || bytes.IndexByte(in[:used], '\n') != used-1 {
					t.Fatalf("v1 header of %d bytes: %q", used, in[:used])
				}
			case 2:
				if used != proxyV2Head+int(binary.BigEndian.Uint16(in[14:16])) {
					t.Fatalf("v2 header: used %d bytes", used)
				}
			default:
				t.Fatalf("version %d", h.Version)
			}
			if h.Source.IsValid() != h.Dest.IsValid() {
				t.Fatalf("one address of two: %v %v", h.Source, h.Dest)
			}
		}
	})
}
