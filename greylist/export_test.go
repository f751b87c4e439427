package greylist

import (
	"net/netip"
	"os"
	"time"
)

// Lock takes f's lock as a store's open does (through the turnstile), for
// a test's own readers and writers.
func Lock(f *os.File, exclusive bool, deadline time.Time) error { return lock(f, exclusive, deadline) }

// SetChunks makes Bolt's Scan and Expire work in chunks of the given sizes,
// so that tests cross chunk boundaries with few records.
func SetChunks(scan, expire int) (restore func()) {
	s, e := scanChunk, expireChunk
	scanChunk, expireChunk = scan, expire
	return func() { scanChunk, expireChunk = s, e }
}

// Encode returns the stored key and value of n's record r, so that a
// benchmark can build a large file directly.
func Encode(n netip.Prefix, r Record) (key, value []byte) {
	v, err := encodeRecord(r)
	if err != nil {
		panic(err)
	}
	return networkKey(n), v
}
