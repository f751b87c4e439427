package relay

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.test"},
		DNSNames: []string{"mx.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pool
}

// With a certificate the relay offers STARTTLS itself (the server's offer
// gives way), terminates TLS and keeps inspecting; the session starts
// over with a new PROGRAM that sees cleartext and MXFRONT_TLS.
func TestSTARTTLSTerminated(t *testing.T) {
	cert, pool := selfSigned(t)
	fake := &fakeServer{ehlo: "250-fake\r\n250-STARTTLS\r\n250 PIPELINING\r\n"}
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Rcpt: Refuse}
	var inTLS []string
	res := run{cfg: cfg, fake: fake, rules: rcptRules(t, "alice@example.test\n"), talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\nSTARTTLS\r\n")
		var pre []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			pre = append(pre, l)
			if strings.HasPrefix(l, "220 2.0.0") {
				break
			}
		}
		if got := strings.Join(pre, ""); strings.Count(got, "STARTTLS") != 1 || !strings.Contains(got, "250 STARTTLS\r\n") {
			t.Fatalf("before TLS:\n%s", got)
		}
		tc := tls.Client(clientConn{DialogueConn: c}, &tls.Config{ServerName: "mx.example.test", RootCAs: pool})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		_, _ = tc.Write([]byte("EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + msg + "QUIT\r\n"))
		tr := bufio.NewReader(tc)
		for {
			l, err := tr.ReadString('\n')
			if err != nil {
				break
			}
			inTLS = append(inTLS, l)
		}
	}}.go_(t)
	got := strings.Join(inTLS, "")
	if strings.Contains(got, "STARTTLS") || !strings.Contains(got, "550 5.1.1 Recipient <bob@example.test>") || !strings.Contains(got, "250 2.0.0 queued as FAKE\r\n221") {
		t.Fatalf("within TLS:\n%s\nlog:\n%s", got, res.log)
	}
	if fake.starts != 2 || len(fake.messages) != 1 || fake.messages[0] != msg {
		t.Fatalf("%d starts, messages %q", fake.starts, fake.messages)
	}
	env := strings.Join(fake.env, "\n")
	if !strings.Contains(env, "MXFRONT_TLS=TLS 1.3 TLS_") || !strings.Contains(env, "MXFRONT_HELO=c.example.org") {
		t.Errorf("the second PROGRAM's environment:\n%s", env)
	}
	if strings.Contains(fake.heard(), "STARTTLS") {
		t.Errorf("the server heard STARTTLS:\n%s", fake.heard())
	}
	if !strings.Contains(res.log, `tls="TLS 1.3 TLS_`) {
		t.Errorf("the transaction's line does not say TLS:\n%s", res.log)
	}
}

// A command sent in cleartext after STARTTLS is never taken as sent
// within TLS.
func TestSTARTTLSInjection(t *testing.T) {
	cert, pool := selfSigned(t)
	fake := &fakeServer{}
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	res := run{cfg: cfg, fake: fake, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "220 2.0.0") {
				break
			}
		}
		tc := tls.Client(clientConn{DialogueConn: c}, &tls.Config{ServerName: "mx.example.test", RootCAs: pool})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		_, _ = tc.Write([]byte("QUIT\r\n"))
		_, _ = bufio.NewReader(tc).ReadString('\n')
	}}.go_(t)
	if strings.Contains(fake.heard(), "injected") || !strings.Contains(res.log, "octets after STARTTLS dropped") {
		t.Fatalf("heard %q\n%s", fake.heard(), res.log)
	}
}
