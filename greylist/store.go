package greylist

import (
	"context"
	"errors"
	"net/netip"
)

// Store keeps one Record per network. It is all a backend must offer: the
// embedded Bolt store, the Memory store for tests, and a shared one (Redis)
// for several MX hosts implement it, and storetest.Run checks any of them.
//
// A Store is safe for concurrent use, by goroutines and, for a shared file
// or server, by processes. Networks are passed as the Policy makes them
// (masked, IPv4 never as IPv4-mapped IPv6); a store keys them by address,
// family and prefix length.
type Store interface {
	// Get returns the record of n, or the zero Record if there is none.
	Get(ctx context.Context, n netip.Prefix) (Record, error)

	// CompareAndSwap replaces the record of n by new if it is still old,
	// atomically for every user of the store, and reports whether it did.
	// A zero old means "no record"; a zero new deletes the record.
	CompareAndSwap(ctx context.Context, n netip.Prefix, old, new Record) (bool, error)

	// Delete removes the record of n and reports whether there was one.
	Delete(ctx context.Context, n netip.Prefix) (bool, error)

	// Scan calls fn for every record, in no promised order, until fn
	// returns an error, which Scan returns. It is not a snapshot: records
	// changed during the scan may be seen either way. fn may call the
	// store's other methods.
	Scan(ctx context.Context, fn func(netip.Prefix, Record) error) error

	// Expire deletes every record for which stale returns true and any
	// record that cannot be decoded, and returns how many it deleted. stale
	// is called once for each record, atomically with its deletion, so a
	// caller may count what it said yes to; it must not call the store.
	Expire(ctx context.Context, stale func(netip.Prefix, Record) bool) (int, error)

	// Stats tells how many records the store holds and how big it is.
	Stats(ctx context.Context) (StoreStats, error)

	// Close releases the store. It does not delete anything.
	Close() error
}

// StoreStats is the size of a store.
type StoreStats struct {
	Records int   // number of networks recorded
	Bytes   int64 // storage used: the file size for Bolt; an estimate elsewhere
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("greylist: store closed")

// Compacter is a store that can rewrite its file without its free pages:
// Bolt, or a store that reaches a Bolt another process holds.
type Compacter interface {
	Compact(ctx context.Context) (Compacted, error)
	Path() string // the file
}

// ExpireCounter is a Store whose Expire judges the records first and
// deletes them after (a Remote store: one scan, then one request that
// deletes each judged record unless it changed meanwhile), so that stale's
// yes may not end in a deletion. It tells instead which records it
// deleted: a caller that counts (Policy.Expire) counts those.
type ExpireCounter interface {
	// ExpireCounting is Expire, calling deleted (when not nil) for each
	// readable record it deleted.
	ExpireCounting(ctx context.Context, stale func(netip.Prefix, Record) bool, deleted func(netip.Prefix, Record)) (int, error)
}
