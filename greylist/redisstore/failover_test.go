package redisstore

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// TestSentinelFailover: a master, a replica and three sentinels on
// loopback; the store reaches the master through the sentinels. The master
// is killed by its PID while decisions go on: every decision meanwhile
// either decides or fails with an error (the client passes), none hangs,
// and decisions resume on the promoted replica without reopening the
// store, which still knows a network recorded before the fail-over. The
// time from the kill to the first decision that succeeds is logged.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a fail-over takes seconds")
	}
	const name = "mxmaster"
	master := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	var sentinels []*testpeer.Redis
	var addrs []string
	for range 3 {
		s := testpeer.StartSentinel(t, name, master.Addr)
		sentinels = append(sentinels, s)
		addrs = append(addrs, s.Addr)
	}
	awaitTopology(t, name, sentinels, replica)

	url := "redis-sentinel://" + strings.Join(addrs, ",") + "/" + name
	// The production timeout: decisions during the fail-over fail fast.
	s := open(t, url, Options{Timeout: DefaultTimeout})
	p := policy(t, s)
	known := netip.MustParseAddr("192.0.2.1")
	// A first attempt past the timeout may still have recorded the
	// network (its reply came late): the retry then finds it early.
	if o, retried := decideEventually(t, p, known); o.State != greylist.New && !(retried && o.State == greylist.Early) {
		t.Fatalf("before the fail-over: %v", o.State)
	}
	// The record is on the replica before the master goes.
	mc := raw(t, master)
	if n, err := mc.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}

	type result struct {
		start, end time.Time
		state      greylist.State
		err        error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			o, _, err := decide(t, p, freshIP())
			mu.Lock()
			results = append(results, result{start, time.Now(), o.State, err})
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // pacing only, not ordering
		}
	})

	killed := time.Now()
	master.Kill()
	for _, sn := range sentinels { // patient until now: see StartSentinel
		sn.JudgeQuickly(t, name)
	}
	promoted := awaitPromotion(t, sentinels[0], name, replica.Addr)

	// Decisions resume on the new master: wait (generously) for one that
	// started after the kill and succeeded.
	var resumed time.Time
	deadline := time.Now().Add(peerWait)
	for resumed.IsZero() {
		mu.Lock()
		for _, r := range results {
			if r.start.After(killed) && r.err == nil {
				resumed = r.end
				break
			}
		}
		mu.Unlock()
		if resumed.IsZero() && time.Now().After(deadline) {
			t.Fatalf("no decision succeeded %v after the master was killed", peerWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	var failed, decided int
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.end.Sub(r.start))
		if r.err != nil {
			failed++
			if r.state != greylist.Unknown {
				t.Errorf("a failed decision said %v: %v", r.state, r.err)
			}
			continue
		}
		decided++
		if r.state != greylist.New {
			t.Errorf("a fresh network was %v", r.state)
		}
	}
	if o, _ := decideEventually(t, p, known); o.State != greylist.Early {
		t.Errorf("after the fail-over, the network recorded before it: %v; want early", o.State)
	}
	t.Logf("fail-over: master killed; sentinels promoted %s after %v; decisions resumed after %v; "+
		"%d decisions failed (clients passed), %d decided; slowest decision %v",
		replica.Addr, promoted.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond),
		failed, decided, slowest.Round(time.Millisecond))
}

// decideEventually retries a decision that fails (a timeout on a loaded
// machine) until one succeeds, generously long; retried says whether one
// failed first.
func decideEventually(t *testing.T, p *greylist.Policy, ip netip.Addr) (o greylist.Outcome, retried bool) {
	t.Helper()
	deadline := time.Now().Add(peerWait)
	for ; ; retried = true {
		o, _, err := decide(t, p, ip)
		if err == nil {
			return o, retried
		}
		if time.Now().After(deadline) {
			t.Fatalf("Decide(%v) fails for %v: %v", ip, peerWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitTopology waits until every sentinel knows the replica and the other
// sentinels, and the replica is in sync: only then can they fail over.
func awaitTopology(t *testing.T, name string, sentinels []*testpeer.Redis, replica *testpeer.Redis) {
	t.Helper()
	deadline := time.Now().Add(peerWait)
	rc := raw(t, replica)
	for {
		ready := true
		for _, s := range sentinels {
			m, err := sentinelMaster(s, name)
			if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != strconv.Itoa(len(sentinels)-1) {
				ready = false
				break
			}
		}
		if ready {
			info, err := rc.Info(ctx, "replication").Result()
			ready = err == nil && strings.Contains(info, "master_link_status:up")
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			m, err := sentinelMaster(sentinels[0], name)
			t.Fatalf("sentinels not ready after %v: %v, %v", peerWait, m, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitPromotion waits until the sentinel names want as the master, and
// returns when it saw that.
func awaitPromotion(t *testing.T, s *testpeer.Redis, name, want string) time.Time {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(peerWait)
	for {
		a, err := c.GetMasterAddrByName(ctx, name).Result()
		if err == nil && len(a) == 2 && net.JoinHostPort(a[0], a[1]) == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinels did not promote %s within %v: %v, %v", want, peerWait, a, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sentinelMaster is SENTINEL MASTER name as a map.
func sentinelMaster(s *testpeer.Redis, name string) (map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	c2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := c.Master(c2, name).Result()
	if err != nil {
		return nil, fmt.Errorf("SENTINEL MASTER %s on %s: %w", name, s.Addr, err)
	}
	return m, nil
}
