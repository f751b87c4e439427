package greylist

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Status is where a recorded network stands now, for an administrator.
type Status uint8

// The statuses of an Entry.
const (
	Pending Status = iota + 1 // greylisted and not yet passed, within Window
	Passing                   // passed within Lifetime: its clients pass
	Stale                     // past Window or Lifetime: Expire removes it, its next attempt starts over
)

var statusNames = [...]string{"", "pending", "passing", "stale"}

func (s Status) String() string {
	if s >= Pending && s <= Stale {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// MarshalText makes a Status its name in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Entry is one recorded network as List shows it.
type Entry struct {
	Network   netip.Prefix `json:"network"`
	FirstSeen time.Time    `json:"first_seen"`
	LastPass  time.Time    `json:"last_pass,omitzero"`
	Status    Status       `json:"status"`
}

func (p *Policy) status(r Record, now time.Time) Status {
	switch {
	case p.passing(r, now):
		return Passing
	case p.stale(r, now):
		return Stale
	}
	return Pending
}

// stale reports whether Decide would start r over at now.
func (p *Policy) stale(r Record, now time.Time) bool {
	if !r.LastPass.IsZero() {
		return now.Sub(r.LastPass) > p.c.Lifetime
	}
	return now.Sub(r.FirstSeen) > p.c.Window
}

// List calls fn for every recorded network, until fn returns an error.
func (p *Policy) List(ctx context.Context, fn func(Entry) error) error {
	now := p.now()
	return p.store.Scan(ctx, func(n netip.Prefix, r Record) error {
		return fn(Entry{Network: n, FirstSeen: r.FirstSeen, LastPass: r.LastPass, Status: p.status(r, now)})
	})
}

// Allow records n as passed now, as if its client had retried in time. n is
// a network as ParseNetwork returns it.
func (p *Policy) Allow(ctx context.Context, n netip.Prefix) error {
	now := p.now()
	for range casAttempts {
		cur, err := p.store.Get(ctx, n)
		if err != nil {
			return err
		}
		next := Record{FirstSeen: cur.FirstSeen, LastPass: now}
		if next.FirstSeen.IsZero() || next.FirstSeen.After(now) {
			next.FirstSeen = now
		}
		ok, err := p.store.CompareAndSwap(ctx, n, cur, next)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("greylist: allow %v: record changed under us %d times", n, casAttempts)
}

// Remove deletes the record of n, passed or not, and reports whether there
// was one: the next attempt from n is greylisted as new.
func (p *Policy) Remove(ctx context.Context, n netip.Prefix) (bool, error) {
	return p.store.Delete(ctx, n)
}

// Expired counts what Expire deleted.
type Expired struct {
	Abandoned  int // greylisted, never retried within Window
	Lapsed     int // passed, but not again within Lifetime
	Unreadable int // records that did not decode
}

// Expire deletes the records that Decide would start over anyway.
func (p *Policy) Expire(ctx context.Context) (Expired, error) {
	now := p.now()
	var e Expired
	count := func(r Record) {
		if r.LastPass.IsZero() {
			e.Abandoned++
		} else {
			e.Lapsed++
		}
	}
	var n int
	var err error
	if ec, ok := p.store.(ExpireCounter); ok {
		n, err = ec.ExpireCounting(ctx, func(_ netip.Prefix, r Record) bool { return p.stale(r, now) },
			func(_ netip.Prefix, r Record) { count(r) })
	} else {
		n, err = p.store.Expire(ctx, func(_ netip.Prefix, r Record) bool {
			if !p.stale(r, now) {
				return false
			}
			count(r)
			return true
		})
	}
	e.Unreadable = max(0, n-e.Abandoned-e.Lapsed)
	return e, err
}

// ExpireEvery runs Expire at once and then every interval until ctx is done,
// handing each result to report (which may be nil), and returns ctx's error.
// A long-running frontend that keeps its store open runs it in a goroutine.
func (p *Policy) ExpireEvery(ctx context.Context, every time.Duration, report func(Expired, error)) error {
	if every <= 0 {
		return fmt.Errorf("greylist: expire interval %v is not positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		e, err := p.Expire(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if report != nil {
			report(e, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Stats counts the recorded networks by status.
type Stats struct {
	Pending, Passing, Stale int
	Bytes                   int64 // storage used, as the store tells it
}

// Stats counts the recorded networks by status and tells the store's size.
func (p *Policy) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := p.List(ctx, func(e Entry) error {
		switch e.Status {
		case Pending:
			s.Pending++
		case Passing:
			s.Passing++
		default:
			s.Stale++
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	st, err := p.store.Stats(ctx)
	s.Bytes = st.Bytes
	return s, err
}
