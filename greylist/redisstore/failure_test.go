package redisstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// Unsure means accept: whatever goes wrong with Redis, Decide returns an
// error (State Unknown: the caller passes the client) and returns it within
// the timeout, never hanging. The tests check that the timeout is what
// ended a hung call (the error wraps context.DeadlineExceeded) and log how
// long it took; they assert no duration, only a watchdog far beyond it.

var nextIP atomic.Uint32

// freshIP is an address of a network no test has decided on yet.
func freshIP() netip.Addr {
	i := nextIP.Add(1)
	return netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
}

func policy(t testing.TB, s greylist.Store) *greylist.Policy {
	t.Helper()
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return base }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decide runs one decision under a watchdog of peerWait.
func decide(t testing.TB, p *greylist.Policy, ip netip.Addr) (greylist.Outcome, time.Duration, error) {
	t.Helper()
	type result struct {
		o   greylist.Outcome
		d   time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		o, err := p.Decide(context.Background(), ip)
		done <- result{o, time.Since(start), err}
	}()
	select {
	case r := <-done:
		return r.o, r.d, r.err
	case <-time.After(peerWait):
		t.Fatalf("Decide(%v) still running after %v", ip, peerWait)
		return greylist.Outcome{}, 0, nil
	}
}

// mustFail checks that a decision failed as the policy promises: no
// decision, an error; if timeout, because the timeout fired.
func mustFail(t testing.TB, p *greylist.Policy, what string, timeout bool, contains string) {
	t.Helper()
	o, d, err := decide(t, p, freshIP())
	if err == nil {
		t.Fatalf("%s: Decide = %v without an error", what, o.State)
	}
	if o.State != greylist.Unknown || o.Greylisted() {
		t.Errorf("%s: Decide = %v with %v; want Unknown (the client passes)", what, o.State, err)
	}
	if timeout && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: %v; want the timeout's error", what, err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Errorf("%s: %v; want %q in it", what, err, contains)
	}
	t.Logf("%s: error after %v: %v", what, d.Round(time.Millisecond), err)
}

// mustDecide waits (generously) until decisions succeed again.
func mustDecide(t testing.TB, p *greylist.Policy, what string) {
	t.Helper()
	deadline := time.Now().Add(peerWait)
	for {
		o, _, err := decide(t, p, freshIP())
		if err == nil && o.State == greylist.New {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: decisions do not succeed: %v, %v", what, o.State, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisDown(t *testing.T) {
	testpeer.Need(t, "redis-server")
	port := testpeer.FreePort(t) // nothing listens there
	s := open(t, "redis://127.0.0.1:"+strconv.Itoa(port), Options{})
	p := policy(t, s)
	mustFail(t, p, "nothing listening", false, "refused")
	mustFail(t, p, "nothing listening, again", false, "")
}

func TestRedisStopped(t *testing.T) {
	srv := startRedis(t)
	p := policy(t, open(t, srv.URL(), Options{Timeout: DefaultTimeout}))
	mustDecide(t, p, "running")
	srv.Stop()
	mustFail(t, p, "stopped by PID", false, "")
}

// TestRedisNeverAnswers: a port that accepts connections and never says a
// word.
func TestRedisNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // never read, never written
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	p := policy(t, open(t, "redis://"+ln.Addr().String(), Options{Timeout: 150 * time.Millisecond}))
	mustFail(t, p, "accepts and never answers", true, "no answer within 150ms")
	mustFail(t, p, "accepts and never answers, again", true, "")
}

// TestRedisFrozen: the server process stopped with SIGSTOP (its own child's
// PID): connected clients get no answer; after SIGCONT decisions resume.
func TestRedisFrozen(t *testing.T) {
	srv := startRedis(t)
	p := policy(t, open(t, srv.URL(), Options{Timeout: DefaultTimeout}))
	mustDecide(t, p, "running")
	srv.Signal(t, syscall.SIGSTOP)
	mustFail(t, p, "SIGSTOP", true, "no answer within 200ms")
	srv.Signal(t, syscall.SIGCONT)
	mustDecide(t, p, "after SIGCONT")
}

// TestRedisSlow: the server answers, but later than the timeout: CLIENT
// PAUSE WRITE holds every write (its OK says the pause is on) while reads
// go on, so a new network's read is answered and its write is not.
func TestRedisSlow(t *testing.T) {
	srv := startRedis(t)
	p := policy(t, open(t, srv.URL(), Options{Timeout: DefaultTimeout}))
	mustDecide(t, p, "running")
	if r, err := testpeer.RedisCommand(srv.Addr, "CLIENT PAUSE 600000 WRITE"); err != nil || r != "+OK" {
		t.Fatalf("CLIENT PAUSE: %q, %v", r, err)
	}
	mustFail(t, p, "writes paused", true, "compare-and-swap")
	if r, err := testpeer.RedisCommand(srv.Addr, "CLIENT UNPAUSE"); err != nil || r != "+OK" {
		t.Fatalf("CLIENT UNPAUSE: %q, %v", r, err)
	}
	mustDecide(t, p, "after the pause")
}

func TestRedisAuth(t *testing.T) {
	srv := startRedis(t, "--requirepass", "default-secret",
		"--user", "mx", "on", ">mx-secret", "~mxfront:*", "~test:*", "+@all")
	dir := t.TempDir()
	right := writeFile(t, dir, "right", "default-secret\n", 0o600)
	wrong := writeFile(t, dir, "wrong", "guess\n", 0o600)
	mx := writeFile(t, dir, "mx", "mx-secret", 0o600)
	t.Setenv(PasswordEnv, "")

	mustFail(t, policy(t, open(t, srv.URL(), Options{})), "no password", false, "NOAUTH")
	mustFail(t, policy(t, open(t, srv.URL(), Options{PasswordFile: wrong})), "wrong password", false, "WRONGPASS")
	mustFail(t, policy(t, open(t, "redis://mx@"+srv.Addr, Options{PasswordFile: right})), "ACL user, default's password", false, "WRONGPASS")
	mustFail(t, policy(t, open(t, "redis://nobody@"+srv.Addr, Options{PasswordFile: mx})), "unknown ACL user", false, "WRONGPASS")
	mustDecide(t, policy(t, open(t, srv.URL(), Options{PasswordFile: right})), "password file")
	mustDecide(t, policy(t, open(t, "redis://mx@"+srv.Addr, Options{PasswordFile: mx})), "ACL user with a password file")
	// The ACL user may not touch keys outside its patterns.
	mustFail(t, policy(t, open(t, "redis://mx@"+srv.Addr, Options{PasswordFile: mx, Prefix: "other:"})), "ACL user, foreign prefix", false, "NOPERM")

	t.Setenv(PasswordEnv, "default-secret")
	mustDecide(t, policy(t, open(t, srv.URL(), Options{})), "REDISCLI_AUTH")
	mustFail(t, policy(t, open(t, srv.URL(), Options{PasswordFile: wrong})), "the file wins over REDISCLI_AUTH", false, "WRONGPASS")
}

// TestRedisOutOfMemory: a server at its memory limit refuses writes (OOM):
// a new network's decision fails and the client passes; known ones still
// read.
func TestRedisOutOfMemory(t *testing.T) {
	srv := startRedis(t, "--maxmemory-policy", "noeviction")
	p := policy(t, open(t, srv.URL(), Options{}))
	mustDecide(t, p, "before the limit")
	if r, err := testpeer.RedisCommand(srv.Addr, "CONFIG SET maxmemory 1"); err != nil || r != "+OK" {
		t.Fatalf("CONFIG SET maxmemory: %q, %v", r, err)
	}
	mustFail(t, p, "out of memory", false, "OOM")
}

// TestRedisReadOnly: a replica refuses writes (READONLY), as a demoted
// master does during a fail-over.
func TestRedisReadOnly(t *testing.T) {
	master := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	mustFail(t, policy(t, open(t, replica.URL(), Options{})), "replica", false, "READONLY")
}

// TestRedisTLS: rediss:// against redis-server's TLS port with a test CA;
// without that CA the server's certificate is refused.
func TestRedisTLS(t *testing.T) {
	testpeer.Need(t, "redis-server")
	dir := t.TempDir()
	ca, caPEM, certPEM, keyPEM := testCertificates(t)
	caFile := writeFile(t, dir, "ca.pem", caPEM, 0o644)
	certFile := writeFile(t, dir, "cert.pem", certPEM, 0o644)
	keyFile := writeFile(t, dir, "key.pem", keyPEM, 0o600)
	tlsPort := strconv.Itoa(testpeer.FreePort(t))
	srv := startRedis(t, "--tls-port", tlsPort, "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
	url := "rediss://127.0.0.1:" + tlsPort

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	mustDecide(t, policy(t, open(t, url, Options{TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})), "TLS with the test CA")
	mustFail(t, policy(t, open(t, url, Options{})), "TLS without the test CA", false, "certificate")
	// Plain RESP against the TLS port is not an answer either.
	mustFail(t, policy(t, open(t, "redis://127.0.0.1:"+tlsPort, Options{Timeout: DefaultTimeout})), "plain text to the TLS port", false, "")
	_ = srv
}

// testCertificates makes a CA and a certificate for 127.0.0.1 signed by it.
func testCertificates(t testing.TB) (*x509.Certificate, string, string, string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mxfront test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, b []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	return ca, pemOf("CERTIFICATE", caDER), pemOf("CERTIFICATE", srvDER), pemOf("EC PRIVATE KEY", keyDER)
}
