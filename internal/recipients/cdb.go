package recipients

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// CDB reads a constant database (D. J. Bernstein's cdb, as tinycdb's and
// qmail's tools write it): a table of 256 (position, slots) pairs, the
// records (key length, data length, key, data), then the hash tables, all
// numbers little-endian 32-bit. It reads with ReadAt, a few octets at a
// time: nothing is loaded whole.
type CDB struct {
	r    io.ReaderAt
	size int64
}

// maxCDBKey bounds the keys looked up (and compared): addresses are short.
const maxCDBKey = 1024

// NewCDB reads the cdb in r, of size octets.
func NewCDB(r io.ReaderAt, size int64) (*CDB, error) {
	if size < 2048 {
		return nil, fmt.Errorf("cdb of %d octets: shorter than its header", size)
	}
	if size > 1<<32 {
		return nil, fmt.Errorf("cdb of %d octets: larger than 4 GiB", size)
	}
	return &CDB{r: r, size: size}, nil
}

// cdbHash is cdb's hash: h = 5381, then h = (h*33) ^ c for each octet.
func cdbHash(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = (h<<5 + h) ^ uint32(c)
	}
	return h
}

var errCDBCorrupt = errors.New("cdb: corrupt")

// pair reads the two numbers at off.
func (c *CDB) pair(off uint32) (uint32, uint32, error) {
	var b [8]byte
	if int64(off)+8 > c.size {
		return 0, 0, fmt.Errorf("%w: offset %d past the end", errCDBCorrupt, off)
	}
	if _, err := c.r.ReadAt(b[:], int64(off)); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(b[:4]), binary.LittleEndian.Uint32(b[4:]), nil
}

// Get returns the data of the first record with key; ok is false when
// there is none.
func (c *CDB) Get(key []byte) (data []byte, ok bool, err error) {
	if len(key) > maxCDBKey {
		return nil, false, nil
	}
	h := cdbHash(key)
	pos, slots, err := c.pair((h & 0xff) * 8)
	if err != nil || slots == 0 {
		return nil, false, err
	}
	if int64(pos)+int64(slots)*8 > c.size {
		return nil, false, fmt.Errorf("%w: hash table at %d of %d slots past the end", errCDBCorrupt, pos, slots)
	}
	buf := make([]byte, len(key))
	slot := (h >> 8) % slots
	for i := uint32(0); i < slots; i++ {
		sh, rec, err := c.pair(pos + slot*8)
		if err != nil {
			return nil, false, err
		}
		if rec == 0 {
			return nil, false, nil // an empty slot ends the probe
		}
		if sh == h {
			klen, dlen, err := c.pair(rec)
			if err != nil {
				return nil, false, err
			}
			if int64(rec)+8+int64(klen)+int64(dlen) > c.size {
				return nil, false, fmt.Errorf("%w: record at %d past the end", errCDBCorrupt, rec)
			}
			if int(klen) == len(key) {
				if _, err := c.r.ReadAt(buf, int64(rec)+8); err != nil {
					return nil, false, err
				}
				if bytes.Equal(buf, key) {
					data = make([]byte, min(dlen, maxCDBKey))
					if _, err := c.r.ReadAt(data, int64(rec)+8+int64(klen)); err != nil {
						return nil, false, err
					}
					return data, true, nil
				}
			}
		}
		if slot++; slot == slots {
			slot = 0
		}
	}
	return nil, false, nil
}

// ValidRcptTo is a validrcptto.cdb, opened at each lookup (as qmail's
// patches do), so that a file rebuilt and renamed into place is seen at
// once, without a reload.
type ValidRcptTo struct {
	Path string
}

// Lookup says whether the normal address addr, or its "@domain", is a key.
func (v ValidRcptTo) Lookup(addr string) (Verdict, error) {
	f, err := os.Open(v.Path)
	if err != nil {
		return Unsure, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Unsure, err
	}
	c, err := NewCDB(f, fi.Size())
	if err != nil {
		return Unsure, fmt.Errorf("%s: %v", v.Path, err)
	}
	keys := []string{addr}
	if d := Domain(addr); d != "" {
		keys = append(keys, "@"+d)
	}
	for _, k := range keys {
		_, ok, err := c.Get([]byte(k))
		if err != nil {
			return Unsure, fmt.Errorf("%s: %v", v.Path, err)
		}
		if ok {
			return Valid, nil
		}
	}
	return Invalid, nil
}
