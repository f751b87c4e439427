package relay_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// testCert writes a self-signed certificate for mx.example.test and its
// key into a directory every user can read (exim reads them as its own
// user), and returns their paths.
func testCert(t *testing.T) (cert, key string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mxfront-cert-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.test"},
		DNSNames: []string{"mx.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// Without a certificate of its own, the relay passes STARTTLS to exim,
// which the test gives a certificate: swaks --tls talks TLS with exim
// through the relay, the message is delivered, and the relay logs that
// inspection ended there.
func TestSTARTTLSPassesThrough(t *testing.T) {
	b := build(t)
	s := newSite(t)
	cert, key := testCert(t)
	ex := testpeer.NewExim(t, testpeer.EximOptions{Main: "tls_advertise_hosts = *\ntls_certificate = " + cert + "\ntls_privatekey = " + key})
	argv := append(append([]string{b.mxfront}, s.flags()...), "--")
	addr, proc := testpeer.TCPServer(t, "127.0.0.1", append(argv, ex.Command("").Args...)...)
	out, code := testpeer.Swaks(t, addr, "127.0.0.2", "--tls", "--to", "alice@example.test", "--header", "Subject: through TLS")
	if code != 0 || !strings.Contains(out, "TLS started") {
		t.Fatalf("swaks --tls: exit %d\n%s\n%s", code, out, ex.Log())
	}
	if msgs := awaitMessages(t, ex, 1); len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: through TLS") {
		t.Fatalf("exim delivered %d messages\n%s", len(msgs), ex.Log())
	}
	if !strings.Contains(ex.Log(), "X=TLS") {
		t.Errorf("exim's log shows no TLS:\n%s", ex.Log())
	}
	testpeer.WaitOutput(t, proc, "end=tls-passthrough")
	if !strings.Contains(proc.Output(), "ended at STARTTLS (no certificate): passed through") {
		t.Errorf("the relay's log:\n%s", proc.Output())
	}
}

// With --tls-cert the relay offers STARTTLS itself: swaks --tls talks
// TLS with mxfront, PROGRAM (mxsink, which offers no STARTTLS) gets the
// message in cleartext with MXFRONT_TLS; under tcpserver and in serve
// mode.
func TestSTARTTLSTerminated(t *testing.T) {
	b := build(t)
	s := newSite(t)
	cert, key := testCert(t)
	for _, mode := range []string{"tcpserver", "serve"} {
		t.Run(mode, func(t *testing.T) {
			spool := t.TempDir()
			flags := s.flags("--tls-cert", cert, "--tls-key", key)
			var addr string
			if mode == "tcpserver" {
				argv := append(append([]string{b.mxfront}, flags...), "--", b.mxsink, "-spool", spool)
				addr, _ = testpeer.TCPServer(t, "127.0.0.1", argv...)
			} else {
				addr = "127.0.0.1:" + itoa(testpeer.FreePort(t))
				args := append(append([]string{"serve", "--listen", addr}, flags...), "--", b.mxsink, "-spool", spool)
				p := testpeer.Start(t, exec.Command(b.mxfront, args...))
				testpeer.WaitOutput(t, p, "listening")
			}
			out, code := testpeer.Swaks(t, addr, "127.0.0.2", "--tls", "--to", "alice@example.test,nobody@example.test", "--header", "Subject: terminated")
			if code != 0 || !strings.Contains(out, "TLS started") || !strings.Contains(out, "550 5.1.1 Recipient <nobody@example.test>") {
				t.Fatalf("swaks --tls: exit %d\n%s", code, out)
			}
			msgs := testpeer.Spooled(t, spool)
			if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: terminated") {
				t.Fatalf("mxsink spooled %d messages", len(msgs))
			}
			if !strings.Contains(msgs[0], "X-Mxsink-Env: MXFRONT_TLS=TLS 1.3 TLS_") || !strings.Contains(msgs[0], "X-Mxsink-Env: MXFRONT_INSPECTED=1") {
				t.Errorf("PROGRAM's environment:\n%s", msgs[0])
			}
		})
	}
}
