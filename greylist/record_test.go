package greylist

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{FirstSeen: time.Unix(1, 0)},
		{FirstSeen: time.Unix(1_750_000_000, 0), LastPass: time.Unix(1_750_000_300, 0)},
		{FirstSeen: time.Unix(1<<32-1, 0), LastPass: time.Unix(1<<32-1, 0)},
	} {
		b, err := encodeRecord(r)
		if err != nil || len(b) != recordLen {
			t.Fatalf("encode %+v: %x, %v", r, b, err)
		}
		got, err := decodeRecord(b)
		if err != nil || !got.Equal(r) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", r, got, err)
		}
	}
	for _, r := range []Record{
		{LastPass: time.Unix(5, 0)},
		{FirstSeen: time.Unix(0, 0)},
		{FirstSeen: time.Unix(-5, 0)},
		{FirstSeen: time.Unix(1<<32, 0)},
		{FirstSeen: time.Unix(5, 0), LastPass: time.Unix(1<<32, 0)},
	} {
		if b, err := encodeRecord(r); err == nil {
			t.Errorf("encode %+v = %x, want an error", r, b)
		}
	}
}

func TestNetworkKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"192.0.2.0/24", "0.0.0.0/0", "255.255.255.255/32", "2001:db8::/64", "::/128", "::ffff:192.0.2.0/120"} {
		n := netip.MustParsePrefix(s)
		got, err := parseNetworkKey(networkKey(n))
		if err != nil || got != n {
			t.Errorf("parse(key(%v)) = %v, %v", n, got, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{1, 0x68, 0x4e, 0xe1, 0x80, 0, 0, 0, 0})
	f.Add([]byte{1, 0x68, 0x4e, 0xe1, 0x80, 0x68, 0x4e, 0xe2, 0xac})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("decoded %x to %+v, which does not encode: %v", b, r, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %x to %+v, which encodes to %x", b, r, again)
		}
	})
}

func FuzzParseNetworkKey(f *testing.F) {
	f.Add([]byte{4, 192, 0, 2, 0, 24})
	f.Add([]byte{6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64})
	f.Fuzz(func(t *testing.T, k []byte) {
		n, err := parseNetworkKey(k)
		if err != nil {
			return
		}
		if again := networkKey(n); !bytes.Equal(again, k) {
			t.Fatalf("parsed %x to %v, whose key is %x", k, n, again)
		}
	})
}
