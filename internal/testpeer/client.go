package testpeer

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Client is a raw SMTP client connection from a chosen loopback address,
// read a line at a time: for tests that must see each reply as it comes
// (limits, shutdowns, PROXY headers), where Session's whole-dialogue
// answer is too coarse.
type Client struct {
	net.Conn
	r *bufio.Reader
}

// Dial connects to addr from src (a 127.0.0.0/8 address); the connection
// is closed when the test ends.
func Dial(t testing.TB, addr, src string) *Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{Conn: c, r: bufio.NewReader(c)}
}

// Line reads one reply line (15 s at most), without its CRLF.
func (c *Client) Line(t testing.TB) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// Expect reads the next line and fails unless it starts with prefix.
func (c *Client) Expect(t testing.TB, prefix string) string {
	t.Helper()
	l := c.Line(t)
	if !strings.HasPrefix(l, prefix) {
		t.Fatalf("got %q, want %q...", l, prefix)
	}
	return l
}

// Await reads lines until one starts with prefix, passing over 2xx lines
// (a multi-line EHLO reply, the greeting of a server one did not ask
// about); any other line fails the test.
func (c *Client) Await(t testing.TB, prefix string) string {
	t.Helper()
	for {
		l := c.Line(t)
		if strings.HasPrefix(l, prefix) {
			return l
		}
		if !strings.HasPrefix(l, "2") {
			t.Fatalf("got %q, want %q...", l, prefix)
		}
	}
}

// Arrived waits (15 s at most) until the server has sent more than has
// been read, without reading it: the next Line or Rest gets it. A test
// waits with it for the server to have spoken, instead of sleeping.
func (c *Client) Arrived(t testing.TB) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.r.Peek(1); err != nil {
		t.Fatalf("waiting for the server to speak: %v", err)
	}
}

// Rest reads everything the server says until it closes (15 s at most).
func (c *Client) Rest(t testing.TB) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

// Send writes s as it is (commands end in CRLF).
func (c *Client) Send(t testing.TB, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
