package redis_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// rediss:// against redis-server's TLS port, its certificate issued by a
// CA this test makes: with SSL_CERT_FILE naming the CA, `mxfront greylist`
// and chain mode use the store (an allowed network passes as known, a new
// one is greylisted and recorded); with another CA the certificate is
// refused: the command fails (exit 111) and a client passes, logged.
func TestRedissWithATestCA(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	ca := writeTestPKI(t, dir)
	port := testpeer.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	bin := testpeer.Need(t, "redis-server")
	testpeer.Start(t, exec.Command(bin, "--port", "0", "--tls-port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no"))
	awaitTLS(t, addr, ca)
	url := "rediss://" + addr

	out, code := adminEnv(t, b, []string{"SSL_CERT_FILE=" + ca}, "allow", "127.0.5.7", "--greylist-store", url)
	if code != 0 || out != "allowed 127.0.5.0/24\n" {
		t.Fatalf("allow over TLS: exit %d\n%s", code, out)
	}
	out, code = adminEnv(t, b, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "none.pem")}, "list", "--greylist-store", url)
	if code != 111 || !strings.Contains(out, "certificate") {
		t.Fatalf("a certificate from an unknown CA: exit %d\n%s", code, out)
	}

	// Each chain-mode connection is a new process with a TLS handshake
	// of its own: under load it can take longer than the store's 200ms
	// default, and the client would pass with a timeout, not a verdict
	// on the certificate (greylistFlags gives 30 s).
	tlsFlags := greylistFlags(url)
	t.Setenv("SSL_CERT_FILE", ca) // for tcpserver and the mxfront it runs
	c := chainHost(t, b, "mx-c.example.test", "127.0.0.12", tlsFlags...)
	out, code = c.send(t, "127.0.0.50")
	mustGreylisted(t, out, code, "127.0.0.50 at C, store over TLS")
	out, code = c.send(t, "127.0.5.50")
	mustPass(t, out, code, "127.0.5.50 at C, allowed over TLS")
	c.logLine(t, "msg=pass ip=127.0.5.50 ", `GREYLIST="passed `)
	out, code = adminEnv(t, b, []string{"SSL_CERT_FILE=" + ca}, "list", "--json", "--greylist-store", url)
	if code != 0 || !strings.Contains(out, `"network":"127.0.0.0/24"`) || !strings.Contains(out, `"status":"pending"`) {
		t.Fatalf("the chain-mode record over TLS: exit %d\n%s", code, out)
	}

	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "none.pem"))
	d := chainHost(t, b, "mx-d.example.test", "127.0.0.13", tlsFlags...)
	out, code = d.send(t, "127.0.1.50")
	mustPass(t, out, code, "127.0.1.50 at D, which does not trust the certificate")
	d.unsureLine(t, "127.0.1.50", "certificate")
}

func adminEnv(t *testing.T, b bins, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(b.mxfront, append([]string{"greylist"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return testpeer.Run(t, patience, cmd)
}

// awaitTLS waits until a TLS PING to addr, trusting ca, is answered.
func awaitTLS(t *testing.T, addr, ca string) {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA %s: %v", ca, err)
	}
	deadline := time.Now().Add(patience)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			if err == nil {
				_, err = c.Read(buf)
			}
			c.Close()
			if err == nil && string(buf) == "+PONG\r\n" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server's TLS port %s does not answer: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeTestPKI writes a CA (ca.pem) and a certificate for 127.0.0.1 that
// it issued (server.pem, server.key) into dir, and returns ca.pem's path.
func writeTestPKI(t *testing.T, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mxfront test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "EC PRIVATE KEY", keyDER)
	// A CA that issued nothing here, for the refusal.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &otherKey.PublicKey, otherKey)
	write("none.pem", "CERTIFICATE", otherDER)
	return write("ca.pem", "CERTIFICATE", caDER)
}
