package greylist

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// Memory is a Store held in the process's memory, for tests and for a
// frontend that needs no persistence. It keeps records in their stored
// binary form, so it behaves as the other stores do (times to the second).
type Memory struct {
	mu     sync.Mutex
	m      map[string][]byte // network key → encoded record
	closed bool
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{m: make(map[string][]byte)} }

var _ Store = (*Memory)(nil)

// Get implements Store.
func (s *Memory) Get(ctx context.Context, n netip.Prefix) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	v, ok := s.m[string(networkKey(n))]
	if !ok {
		return Record{}, nil
	}
	r, err := decodeRecord(v)
	if err != nil {
		return Record{}, fmt.Errorf("greylist: get %v: %w", n, err)
	}
	return r, nil
}

// CompareAndSwap implements Store.
func (s *Memory) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new Record) (bool, error) {
	oldv, err := encodeRecord(old)
	if err != nil {
		return false, err
	}
	newv, err := encodeRecord(new)
	if err != nil {
		return false, err
	}
	k := string(networkKey(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if string(s.m[k]) != string(oldv) {
		return false, nil
	}
	if newv == nil {
		delete(s.m, k)
	} else {
		s.m[k] = newv
	}
	return true, nil
}

// Delete implements Store.
func (s *Memory) Delete(ctx context.Context, n netip.Prefix) (bool, error) {
	k := string(networkKey(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	_, ok := s.m[k]
	delete(s.m, k)
	return ok, nil
}

// Scan implements Store. It calls fn on a copy, so fn may use the store.
func (s *Memory) Scan(ctx context.Context, fn func(netip.Prefix, Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	copied := make(map[string][]byte, len(s.m))
	for k, v := range s.m {
		copied[k] = v
	}
	s.mu.Unlock()
	for k, v := range copied {
		n, err := parseNetworkKey([]byte(k))
		if err != nil {
			return fmt.Errorf("greylist: scan: %w", err)
		}
		r, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("greylist: scan %v: %w", n, err)
		}
		if err := fn(n, r); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Expire implements Store.
func (s *Memory) Expire(ctx context.Context, stale func(netip.Prefix, Record) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	deleted := 0
	for k, v := range s.m {
		n, err := parseNetworkKey([]byte(k))
		r, err2 := decodeRecord(v)
		if err != nil || err2 != nil || stale(n, r) {
			delete(s.m, k)
			deleted++
		}
	}
	return deleted, nil
}

// Stats implements Store; Bytes counts keys and values only.
func (s *Memory) Stats(ctx context.Context) (StoreStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return StoreStats{}, ErrClosed
	}
	st := StoreStats{Records: len(s.m)}
	for k, v := range s.m {
		st.Bytes += int64(len(k) + len(v))
	}
	return st, nil
}

// Close implements Store; the records are dropped.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed, s.m = true, nil
	return nil
}
