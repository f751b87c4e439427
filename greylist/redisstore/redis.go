// Package redisstore is a greylist.Store in Redis (or Valkey, which speaks
// the same protocol), so that several MX hosts share one greylist: a sender
// greylisted at one MX that retries at another is recognised there.
//
// Each network is one string key, PREFIX + the network as netip writes it
// ("mxfront:gl:192.0.2.0/24", "mxfront:gl:2001:db8:1:2::/64"), whose value
// is "FIRST LAST": the first-seen and last-pass times as decimal Unix
// seconds, LAST 0 when the network has not passed. Every write sets the
// key's TTL, the window for a pending network and the lifetime for a passed
// one, so Redis expires records itself and no sweep is needed; a passing
// network's TTL is renewed by the policy's write at most once an hour.
// Compare-and-swap is a Lua script, atomic for every client of the server.
//
// It is a separate package so that only an executable that uses Redis links
// the client (github.com/redis/go-redis/v9); chain mode's lean executable
// does not. Like package greylist it knows nothing of SMTP, never logs and
// never refuses: every failure (the server down, slow past the timeout,
// refusing AUTH, read-only during a fail-over, out of memory) is an error
// returned within the timeout, and the caller passes the client.
package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mxfront/mxfront/greylist"
)

// Defaults of Options.
const (
	DefaultPrefix  = "mxfront:gl:"
	DefaultTimeout = 200 * time.Millisecond
)

// PasswordEnv is the environment variable the password is read from when
// no password file is given, as redis-cli reads it.
const PasswordEnv = "REDISCLI_AUTH"

// Options tune a Redis store. Zero fields take the defaults.
type Options struct {
	// PasswordFile holds the password on its first line (of the ACL user
	// of the URL, or of the default user). Without one the password is
	// $REDISCLI_AUTH, and without that there is none. A password is never
	// taken from the URL or the command line.
	PasswordFile string

	// Prefix begins every key, so that several deployments share one
	// Redis; DefaultPrefix when empty.
	Prefix string

	// Timeout bounds every round trip to Redis (connecting included):
	// past it the operation fails with an error wrapping
	// context.DeadlineExceeded. DefaultTimeout when zero. A decision makes
	// one round trip for a known network and two when it writes; bound the
	// whole decision with a context deadline as well.
	Timeout time.Duration

	// Window and Lifetime are the TTLs of a pending and of a passed record:
	// the policy's --greylist-window and --greylist-lifetime, so that Redis
	// drops a record when the policy would start it over anyway.
	// greylist.DefaultWindow and greylist.DefaultLifetime when zero.
	Window, Lifetime time.Duration

	// TLS configures rediss://; nil means the system's roots (which
	// honour SSL_CERT_FILE) and the URL's host as the server name.
	TLS *tls.Config

	// PoolSize is the most connections kept to the server; zero is the
	// client's default (10 per CPU). Chain mode needs one.
	PoolSize int

	dialer func(ctx context.Context, network, addr string) (net.Conn, error) // tests
}

// Store is a greylist.Store in Redis. It is safe for concurrent use, and
// shares the server with other processes and hosts.
type Store struct {
	target Target
	o      Options
	c      *redis.Client
	closed atomic.Bool
}

var _ greylist.Store = (*Store)(nil)

// Open returns the store at the URL (see ParseURL). It reads the password
// but does not connect: the first operation does, so that a chain-mode
// process that never asks the store never connects.
func Open(rawURL string, o Options) (*Store, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Window <= 0 {
		o.Window = greylist.DefaultWindow
	}
	if o.Lifetime <= 0 {
		o.Lifetime = greylist.DefaultLifetime
	}
	pass, err := password(o.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %v: %w", t, err)
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	s := &Store{target: t, o: o}
	s.c = s.client(pass)
	return s, nil
}

// The client logs its failures itself, on stderr, which is the client's
// connection under inetd. The store returns them as errors instead, and the
// caller logs them its way; so the client is silenced, process-wide, by
// the first Open.
var quietOnce sync.Once

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// password reads the first line of file, or $REDISCLI_AUTH without one.
func password(file string) (string, error) {
	if file == "" {
		return os.Getenv(PasswordEnv), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("password file %s: the first line is empty", file)
	}
	return line, nil
}

func (s *Store) client(pass string) *redis.Client {
	t, o := s.target, s.o
	var tc *tls.Config
	if t.TLS {
		tc = o.TLS
		if tc == nil {
			host, _, _ := net.SplitHostPort(t.Addrs[0])
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
	}
	if t.Master != "" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: t.Master, SentinelAddrs: t.Addrs,
			Username: t.User, Password: pass, DB: t.DB,
			Dialer: o.dialer, TLSConfig: tc,
			// RESP2, the plainest replies. Either way a new connection
			// costs one round trip (HELLO, carrying the password) before
			// the first command: a chain-mode process pays it per client.
			Protocol:    2,
			DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolTimeout: o.Timeout, ContextTimeoutEnabled: true,
			DialerRetries: 1, PoolSize: o.PoolSize, DisableIdentity: true,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:     t.Addrs[0],
		Username: t.User, Password: pass, DB: t.DB,
		Dialer: o.dialer, TLSConfig: tc,
		Protocol:    2,
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		PoolTimeout: o.Timeout, ContextTimeoutEnabled: true,
		DialerRetries: 1, PoolSize: o.PoolSize, DisableIdentity: true,
	})
}

// Target returns where the store is.
func (s *Store) Target() Target { return s.target }

// Prefix returns the prefix of the store's keys.
func (s *Store) Prefix() string { return s.o.Prefix }

// ExpiresItself reports that Redis deletes stale records by their TTL, so
// that `mxfront greylist expire` and serve mode's hourly sweep have nothing
// to do. (Expire still works, for records written without a TTL.)
func (s *Store) ExpiresItself() bool { return true }

// Ping checks that the server answers and accepts the password.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return greylist.ErrClosed
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.fail("ping", "", s.c.Ping(ctx).Err())
}

// Close implements greylist.Store: it closes the connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.fail("close", "", s.c.Close())
}

// bound gives one round trip its deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.Timeout)
}

func (s *Store) key(n netip.Prefix) string { return s.o.Prefix + n.Masked().String() }

// Get implements greylist.Store.
func (s *Store) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	if s.closed.Load() {
		return greylist.Record{}, greylist.ErrClosed
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.c.Get(ctx, s.key(n)).Result()
	if errors.Is(err, redis.Nil) {
		return greylist.Record{}, nil
	}
	if err != nil {
		return greylist.Record{}, s.fail("get", n.String(), err)
	}
	r, err := decodeValue(v)
	if err != nil {
		return greylist.Record{}, s.fail("get", n.String(), err)
	}
	return r, nil
}

// casScript replaces KEYS[1]'s value by ARGV[2] with a TTL of ARGV[3]
// milliseconds if it is ARGV[1], "" standing for no key (as old) and for
// deleting it (as new). A script runs atomically: no other client's command
// runs between its GET and its SET.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
	if cur ~= '' then redis.call('DEL', KEYS[1]) end
else
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
`)

// CompareAndSwap implements greylist.Store. A record written gets a TTL:
// the window if it has not passed, the lifetime if it has.
func (s *Store) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new greylist.Record) (bool, error) {
	oldv, err := encodeValue(old)
	if err != nil {
		return false, err
	}
	newv, err := encodeValue(new)
	if err != nil {
		return false, err
	}
	if s.closed.Load() {
		return false, greylist.ErrClosed
	}
	ttl := s.o.Window
	if !new.LastPass.IsZero() {
		ttl = s.o.Lifetime
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ok, err := s.swap(ctx, s.key(n), oldv, newv, ttl)
	if err != nil {
		return false, s.fail("compare-and-swap", n.String(), err)
	}
	return ok, nil
}

func (s *Store) swap(ctx context.Context, key, old, new string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	n, err := casScript.Run(ctx, s.c, []string{key}, old, new, strconv.FormatInt(ms, 10)).Int()
	return n == 1, err
}

// Delete implements greylist.Store.
func (s *Store) Delete(ctx context.Context, n netip.Prefix) (bool, error) {
	if s.closed.Load() {
		return false, greylist.ErrClosed
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	d, err := s.c.Del(ctx, s.key(n)).Result()
	if err != nil {
		return false, s.fail("delete", n.String(), err)
	}
	return d > 0, nil
}

// Scan implements greylist.Store with SCAN (never KEYS, which would block
// the server on a large greylist), a batch of keys and their values per
// round trip pair; fn is called between round trips.
func (s *Store) Scan(ctx context.Context, fn func(netip.Prefix, greylist.Record) error) error {
	return s.each(ctx, "scan", func(n netip.Prefix, _, v string) error {
		r, err := decodeValue(v)
		if err != nil {
			return s.fail("scan", n.String(), err)
		}
		return fn(n, r)
	})
}

// Expire implements greylist.Store, though Redis expires records by their
// TTL (see ExpiresItself): it deletes the stale and unreadable records that
// have none or a longer one. A record is deleted only if it is still the
// one stale judged; one that a decision changed in between is kept (and
// not counted).
func (s *Store) Expire(ctx context.Context, stale func(netip.Prefix, greylist.Record) bool) (int, error) {
	deleted := 0
	err := s.eachKey(ctx, "expire", func(key, v string) error {
		n, err := s.network(key)
		if err == nil {
			var r greylist.Record
			if r, err = decodeValue(v); err == nil && !stale(n, r) {
				return nil
			}
		}
		c, cancel := s.bound(ctx)
		defer cancel()
		ok, err := s.swap(c, key, v, "", 0)
		if err != nil {
			return s.fail("expire", strings.TrimPrefix(key, s.o.Prefix), err)
		}
		if ok {
			deleted++
		}
		return nil
	})
	return deleted, err
}

// Stats implements greylist.Store; Bytes is the server's MEMORY USAGE of
// the keys, or their lengths where the server does not tell.
func (s *Store) Stats(ctx context.Context) (greylist.StoreStats, error) {
	var st greylist.StoreStats
	err := s.eachBatch(ctx, "stats", false, func(keys, _ []string) error {
		c, cancel := s.bound(ctx)
		defer cancel()
		pipe := s.c.Pipeline()
		sizes := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			sizes[i] = pipe.MemoryUsage(c, k, 0)
		}
		_, _ = pipe.Exec(c)
		if err := c.Err(); err != nil {
			return s.fail("stats", "", err)
		}
		for i, k := range keys {
			size, err := sizes[i].Result()
			if errors.Is(err, redis.Nil) {
				continue // gone since SCAN
			}
			st.Records++
			if err != nil {
				size = int64(len(k)) + 24 // the key, a value of two numbers
			}
			st.Bytes += size
		}
		return nil
	})
	if err != nil {
		return greylist.StoreStats{}, err
	}
	return st, nil
}

// scanCount is how many keys SCAN is asked for per round trip.
var scanCount int64 = 500

// each calls fn for every record's network, key and value.
func (s *Store) each(ctx context.Context, op string, fn func(n netip.Prefix, key, value string) error) error {
	return s.eachKey(ctx, op, func(key, v string) error {
		n, err := s.network(key)
		if err != nil {
			return s.fail(op, "", err)
		}
		return fn(n, key, v)
	})
}

// eachKey calls fn for every key under the prefix that holds a string, with
// its value.
func (s *Store) eachKey(ctx context.Context, op string, fn func(key, value string) error) error {
	return s.eachBatch(ctx, op, true, func(keys, values []string) error {
		for i, k := range keys {
			if err := fn(k, values[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachBatch walks the keys under the prefix with SCAN, a batch at a time,
// each key once (SCAN may return a key twice), with their values if
// withValues (keys that vanished or hold no string are left out).
func (s *Store) eachBatch(ctx context.Context, op string, withValues bool, fn func(keys, values []string) error) error {
	if s.closed.Load() {
		return greylist.ErrClosed
	}
	match := globEscape(s.o.Prefix) + "*"
	seen := make(seenKeys)
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.closed.Load() {
			return greylist.ErrClosed
		}
		keys, next, values, err := s.batch(ctx, cursor, match, withValues)
		if err != nil {
			return s.fail(op, "", err)
		}
		fresh, vals := keys[:0], values[:0]
		for i, k := range keys {
			if seen.again(s, k) {
				continue
			}
			if withValues {
				if values[i] == nil {
					continue
				}
				vals = append(vals, values[i])
			}
			fresh = append(fresh, k)
		}
		if len(fresh) > 0 {
			strs := make([]string, len(vals))
			for i, v := range vals {
				strs[i], _ = v.(string)
			}
			if err := fn(fresh, strs); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// seenKeys remembers the keys a walk has met, compactly enough for a
// million networks (about 30 MB): a network's key as 18 bytes, any other
// key under the prefix as itself.
type seenKeys map[[18]byte]struct{}

// again reports whether key was met before, and remembers it.
func (m seenKeys) again(s *Store, key string) bool {
	var k [18]byte
	if n, err := s.network(key); err == nil {
		a := n.Addr().As16()
		k[0] = 4
		if n.Addr().Is6() {
			k[0] = 6
		}
		copy(k[1:17], a[:])
		k[17] = byte(n.Bits())
	} else {
		// A damaged key (rare): its 128-bit hash, under a tag no
		// network has.
		h := fnv.New128a()
		h.Write([]byte(key))
		copy(k[1:], h.Sum(nil))
	}
	if _, ok := m[k]; ok {
		return true
	}
	m[k] = struct{}{}
	return false
}

// batch is one SCAN and, if withValues, one MGET of the keys it returned.
func (s *Store) batch(ctx context.Context, cursor uint64, match string, withValues bool) ([]string, uint64, []any, error) {
	c, cancel := s.bound(ctx)
	defer cancel()
	keys, next, err := s.c.Scan(c, cursor, match, scanCount).Result()
	if err != nil || !withValues || len(keys) == 0 {
		return keys, next, make([]any, len(keys)), err
	}
	values, err := s.c.MGet(c, keys...).Result()
	if err == nil && len(values) != len(keys) {
		err = fmt.Errorf("MGET of %d keys answered %d values", len(keys), len(values))
	}
	return keys, next, values, err
}

// network reads a key back into its network.
func (s *Store) network(key string) (netip.Prefix, error) {
	k := strings.TrimPrefix(key, s.o.Prefix)
	n, err := netip.ParsePrefix(k)
	if err != nil || n != n.Masked() {
		return netip.Prefix{}, fmt.Errorf("key %q: %w: not a network", key, greylist.ErrDamaged)
	}
	return n, nil
}

// globEscape quotes the characters SCAN's MATCH pattern treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fail gives err the server, the operation and the network, and says a
// deadline in words.
func (s *Store) fail(op, network string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) && s.closed.Load() {
		return greylist.ErrClosed
	}
	what := op
	if network != "" {
		what += " " + network
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("greylist: %v: %s: no answer within %v: %w", s.target, what, s.o.Timeout, timeoutError{err})
	}
	return fmt.Errorf("greylist: %v: %s: %w", s.target, what, err)
}

// timeoutError makes a network timeout match context.DeadlineExceeded too,
// so that a caller tells a timeout from a refusal with errors.Is alone.
type timeoutError struct{ err error }

func (e timeoutError) Error() string   { return e.err.Error() }
func (e timeoutError) Unwrap() []error { return []error{e.err, context.DeadlineExceeded} }

// encodeValue is a record's stored value, "" for the zero Record. Times are
// checked as package greylist checks them: to the second, 1970 to 2106.
func encodeValue(r greylist.Record) (string, error) {
	if r.IsZero() {
		return "", nil
	}
	if r.FirstSeen.IsZero() {
		return "", errors.New("greylist: record without a first-seen time")
	}
	first := r.FirstSeen.Unix()
	if first <= 0 || first > 1<<32-1 {
		return "", fmt.Errorf("greylist: first-seen time %v out of range", r.FirstSeen)
	}
	var last int64
	if !r.LastPass.IsZero() {
		if last = r.LastPass.Unix(); last <= 0 || last > 1<<32-1 {
			return "", fmt.Errorf("greylist: last-pass time %v out of range", r.LastPass)
		}
	}
	return strconv.FormatInt(first, 10) + " " + strconv.FormatInt(last, 10), nil
}

// decodeValue is the inverse of encodeValue for a present record.
func decodeValue(v string) (greylist.Record, error) {
	fs, ls, ok := strings.Cut(v, " ")
	first, err1 := strconv.ParseUint(fs, 10, 32)
	last, err2 := strconv.ParseUint(ls, 10, 32)
	if !ok || err1 != nil || err2 != nil || first == 0 ||
		strconv.FormatUint(first, 10) != fs || strconv.FormatUint(last, 10) != ls {
		return greylist.Record{}, fmt.Errorf("value %q: %w: not \"FIRST LAST\" in Unix seconds", v, greylist.ErrDamaged)
	}
	r := greylist.Record{FirstSeen: time.Unix(int64(first), 0)}
	if last != 0 {
		r.LastPass = time.Unix(int64(last), 0)
	}
	return r, nil
}
