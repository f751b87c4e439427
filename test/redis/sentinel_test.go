package redis_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// The recipe's fail-over: a Redis master and its replica, three sentinels,
// serve mode (A) and chain mode (C) reaching the master through the
// sentinels. While clients of a known network keep connecting to C, the
// master is killed by its PID; the sentinels promote the replica. No
// client is refused meanwhile (each passes: known, or unsure and logged),
// and without a restart of mxfront decisions resume on the new master: C
// knows the network again (the record was replicated) and A greylists a
// new network.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a fail-over takes seconds")
	}
	b := build(t)
	const name = "mxgrey"
	master := testpeer.StartRedis(t)
	_, mport, _ := net.SplitHostPort(master.Addr)
	replica := testpeer.StartRedis(t, "--replicaof", "127.0.0.1", mport)
	var sentinels []*testpeer.Redis
	var addrs []string
	for range 3 {
		s := testpeer.StartSentinel(t, name, master.Addr)
		sentinels, addrs = append(sentinels, s), append(addrs, s.Addr)
	}
	awaitTopology(t, name, sentinels, replica)
	url := "redis-sentinel://" + strings.Join(addrs, ",") + "/" + name

	// The production timeout: clients at C pass quickly while the master
	// is gone (the loops below tolerate a timeout before the kill).
	prod := greylistFlags(url, "--greylist-store-timeout", "200ms")
	a := serveHost(t, b, "mx-a.example.test", "127.0.0.10", prod...)
	c := chainHost(t, b, "mx-c.example.test", "127.0.0.12", prod...)
	if out, code := admin(t, b, "allow", "127.0.7.0/24", "--greylist-store", url); code != 0 {
		t.Fatalf("allow: exit %d\n%s", code, out)
	}
	mc := redis.NewClient(&redis.Options{Addr: master.Addr, Protocol: 2, DisableIdentity: true})
	defer mc.Close()
	if n, err := mc.Wait(context.Background(), 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	out, code := c.send(t, "127.0.7.1")
	mustPass(t, out, code, "127.0.7.1, known, before the fail-over")

	// Clients of the known network at C, one after another, throughout.
	type attempt struct {
		start time.Time
		src   string
		out   string
		code  int
	}
	var (
		mu       sync.Mutex
		attempts []attempt
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		for i := 2; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := "127.0.7." + strconv.Itoa(2+i%250)
			start := time.Now()
			out, code := c.send(t, src)
			mu.Lock()
			attempts = append(attempts, attempt{start, src, out, code})
			mu.Unlock()
		}
	})
	killed := time.Now()
	master.Kill()
	for _, sn := range sentinels { // patient until now: see StartSentinel
		sn.JudgeQuickly(t, name)
	}
	awaitPromotion(t, sentinels[0], name, replica.Addr)

	// Decisions resume at A: a new network is greylisted (not passed
	// unsure) without a restart.
	deadline := time.Now().Add(patience)
	for i := 0; ; i++ {
		src := fmt.Sprintf("127.0.%d.50", 10+i%200)
		out, code := a.send(t, src)
		if code != 0 {
			mustGreylisted(t, out, code, src+" at A after the fail-over")
			a.logLine(t, "msg=greylisted ip="+src+" ", "new")
			break
		}
		a.logLine(t, "msg=pass ip="+src+" ", "GREYLIST=error")
		if time.Now().After(deadline) {
			t.Fatalf("A still passes new networks unsure %v after the promotion", patience)
		}
	}
	// And at C: a client of the known network passes as known again.
	for {
		mu.Lock()
		// Each attempt has an address of its own (up to 250 of them).
		var resumed bool
		for _, at := range attempts {
			resumed = resumed || at.start.After(killed) && at.code == 0 && passedKnown(c, at.src)
		}
		mu.Unlock()
		if resumed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("C did not know 127.0.7.0/24 again within %v of the promotion", patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	for _, at := range attempts {
		if at.code != 0 {
			t.Errorf("%s at C during the fail-over: exit %d\n%s", at.src, at.code, at.out)
		}
	}
	t.Logf("fail-over: %d clients at C meanwhile, none refused; %d passed unsure (logged)",
		len(attempts), strings.Count(c.p.Output(), `msg="greylist failed: client passed"`))
}

// passedKnown reports whether h logged a pass of src as known (not
// unsure).
func passedKnown(c *host, src string) bool {
	for _, line := range strings.Split(c.p.Output(), "\n") {
		if strings.Contains(line, "msg=pass ip="+src+" ") && strings.Contains(line, `GREYLIST="passed `) {
			return true
		}
	}
	return false
}

// awaitTopology waits until every sentinel knows the replica and the other
// sentinels, and the replica is in sync: only then can they fail over.
func awaitTopology(t *testing.T, name string, sentinels []*testpeer.Redis, replica *testpeer.Redis) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr, Protocol: 2, DisableIdentity: true})
	defer rc.Close()
	deadline := time.Now().Add(patience)
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
			info, err := rc.Info(context.Background(), "replication").Result()
			ready = err == nil && strings.Contains(info, "master_link_status:up")
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			m, err := sentinelMaster(sentinels[0], name)
			t.Fatalf("sentinels not ready after %v: %v, %v", patience, m, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitPromotion waits until the sentinel names want as the master.
func awaitPromotion(t *testing.T, s *testpeer.Redis, name, want string) {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(patience)
	for {
		a, err := c.GetMasterAddrByName(context.Background(), name).Result()
		if err == nil && len(a) == 2 && net.JoinHostPort(a[0], a[1]) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinels did not promote %s within %v: %v, %v", want, patience, a, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sentinelMaster is SENTINEL MASTER name as a map.
func sentinelMaster(s *testpeer.Redis, name string) (map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Master(ctx, name).Result()
}
