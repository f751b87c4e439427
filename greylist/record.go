package greylist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Record is what a Store keeps for one network. The zero Record means "no
// record": stores never hold one, and CompareAndSwap uses it for "absent".
// Times are kept to the second, between 1970 and 2106.
type Record struct {
	FirstSeen time.Time // when the current greylisting round began
	LastPass  time.Time // the last recorded pass; zero if the network has not passed
}

// IsZero reports whether r is the zero Record, i.e. no record at all.
func (r Record) IsZero() bool { return r.FirstSeen.IsZero() && r.LastPass.IsZero() }

// Equal reports whether r and o hold the same instants.
func (r Record) Equal(o Record) bool {
	return r.FirstSeen.Equal(o.FirstSeen) && r.LastPass.Equal(o.LastPass)
}

// ErrDamaged is wrapped by errors about data a store cannot read: a
// corrupted database file or a record that does not decode.
var ErrDamaged = errors.New("damaged data")

// The encoding of a record is fixed binary, 9 bytes, so that a million
// networks stay small: a format byte, then the first-seen and last-pass times
// as big-endian unsigned Unix seconds (0 = none for the last pass).
const (
	recordFormat = 1
	recordLen    = 9
)

// encodeRecord returns the stored form of r, or nil for the zero Record.
func encodeRecord(r Record) ([]byte, error) {
	if r.IsZero() {
		return nil, nil
	}
	if r.FirstSeen.IsZero() {
		return nil, errors.New("greylist: record without a first-seen time")
	}
	first, ok := seconds(r.FirstSeen)
	if !ok || first == 0 {
		return nil, fmt.Errorf("greylist: first-seen time %v out of range", r.FirstSeen)
	}
	var last uint32
	if !r.LastPass.IsZero() {
		if last, ok = seconds(r.LastPass); !ok || last == 0 {
			return nil, fmt.Errorf("greylist: last-pass time %v out of range", r.LastPass)
		}
	}
	b := make([]byte, recordLen)
	b[0] = recordFormat
	binary.BigEndian.PutUint32(b[1:5], first)
	binary.BigEndian.PutUint32(b[5:9], last)
	return b, nil
}

func seconds(t time.Time) (uint32, bool) {
	s := t.Unix()
	return uint32(s), s >= 0 && s <= 1<<32-1
}

// decodeRecord is the inverse of encodeRecord for a present record.
func decodeRecord(b []byte) (Record, error) {
	if len(b) != recordLen || b[0] != recordFormat {
		return Record{}, fmt.Errorf("record %x: %w: not format %d", b, ErrDamaged, recordFormat)
	}
	first := binary.BigEndian.Uint32(b[1:5])
	if first == 0 {
		return Record{}, fmt.Errorf("record %x: %w: no first-seen time", b, ErrDamaged)
	}
	r := Record{FirstSeen: time.Unix(int64(first), 0)}
	if last := binary.BigEndian.Uint32(b[5:9]); last != 0 {
		r.LastPass = time.Unix(int64(last), 0)
	}
	return r, nil
}

// The key of a network is its family (4 or 6), its masked address and its
// prefix length, so that IPv4 sorts before IPv6 and a change of prefix length
// never makes an old record match.
func networkKey(n netip.Prefix) []byte {
	n = n.Masked()
	a := n.Addr()
	k := make([]byte, 0, 18)
	if a.Is4() {
		k = append(k, 4)
	} else {
		k = append(k, 6)
	}
	k = append(k, a.AsSlice()...)
	return append(k, byte(n.Bits()))
}

func parseNetworkKey(k []byte) (netip.Prefix, error) {
	var want int
	switch {
	case len(k) > 0 && k[0] == 4:
		want = 4
	case len(k) > 0 && k[0] == 6:
		want = 16
	}
	if want == 0 || len(k) != want+2 {
		return netip.Prefix{}, fmt.Errorf("key %x: %w: not a network", k, ErrDamaged)
	}
	a, _ := netip.AddrFromSlice(k[1 : 1+want])
	n, err := a.Prefix(int(k[len(k)-1]))
	if err != nil || n.Addr() != a {
		return netip.Prefix{}, fmt.Errorf("key %x: %w: not a masked network", k, ErrDamaged)
	}
	return n, nil
}
