package dnsbl

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Cache keeps list answers for their TTL, for a long-running process (serve
// mode). A per-connection process gains nothing from it: a local caching
// resolver belongs beside it instead. Failures (timeouts, SERVFAIL,
// REFUSED) are never cached; an error-code answer (127.255.255.x) is an
// answer, kept for its TTL and reported as an error each time it is used.
// A Cache is safe for concurrent use and may be shared by several Checkers
// (e.g. across a reload).
type Cache struct {
	mu     sync.Mutex
	size   int
	maxTTL time.Duration
	now    func() time.Time
	lru    *list.List // of *cacheItem, most recently used first
	items  map[cacheKey]*list.Element
}

type cacheKey struct {
	query string
	qtype uint16
}

// cacheEntry is an answer: A (or AAAA) records, a TXT text, or PTR names.
type cacheEntry struct {
	addrs []netip.Addr
	txt   string
	names []string // PTR (rdns.go)
	count int      // PTR records in the answer
}

type cacheItem struct {
	key     cacheKey
	entry   cacheEntry
	expires time.Time
}

// NewCache returns a cache of at most size answers, each kept for its TTL
// but never longer than maxTTL. now is the clock (time.Now when nil).
func NewCache(size int, maxTTL time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{size: max(size, 1), maxTTL: maxTTL, now: now,
		lru: list.New(), items: map[cacheKey]*list.Element{}}
}

// Len returns the number of answers held, expired ones included until they
// are looked up or pushed out.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *Cache) get(k cacheKey) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return cacheEntry{}, false
	}
	it := el.Value.(*cacheItem)
	if !c.now().Before(it.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		return cacheEntry{}, false
	}
	c.lru.MoveToFront(el)
	return it.entry, true
}

// put keeps e for ttl seconds (capped by maxTTL); a zero TTL keeps nothing.
func (c *Cache) put(k cacheKey, e cacheEntry, ttl uint32) {
	if c == nil {
		return
	}
	d := min(time.Duration(ttl)*time.Second, c.maxTTL)
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it := &cacheItem{key: k, entry: e, expires: c.now().Add(d)}
	if el, ok := c.items[k]; ok {
		el.Value = it
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheItem).key)
	}
	c.items[k] = c.lru.PushFront(it)
}
