package relay

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"github.com/mxfront/mxfront/frontend"
)

// STARTTLS with a certificate of the relay's own (--tls-cert): the relay
// offers STARTTLS in place of the server's, terminates TLS with
// crypto/tls and keeps inspecting; PROGRAM sees cleartext. RFC 3207 makes
// the session start over after the handshake (the client says EHLO
// again, the server forgets what it knew), so the relay ends the
// cleartext PROGRAM and starts a new one at the next HELO or EHLO, whose
// environment holds MXFRONT_TLS.

// clientConn makes the client's connection a net.Conn for crypto/tls:
// chain mode's is a file or a pair of pipes.
type clientConn struct {
	frontend.DialogueConn
	local, remote net.Addr
}

func (c clientConn) Close() error         { return nil } // the life closes the connection
func (c clientConn) LocalAddr() net.Addr  { return c.local }
func (c clientConn) RemoteAddr() net.Addr { return c.remote }
func (c clientConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func tcpAddr(ap netip.AddrPort) net.Addr { return net.TCPAddrFromAddrPort(ap) }

// netConn is the client's connection as a net.Conn.
func (s *session) netConn() net.Conn {
	if c, ok := s.client.(net.Conn); ok {
		return c
	}
	return clientConn{DialogueConn: s.client, local: tcpAddr(s.p.Client.Local), remote: tcpAddr(s.p.Client.Remote)}
}

// startTLS answers STARTTLS itself and runs the handshake.
func (s *session) startTLS() error {
	if s.tls != "" {
		s.errors++
		s.reply(frontend.Reply{Code: 503, Status: frontend.StatusProtocol, Text: "Error: TLS is already active"})
		return nil
	}
	// Octets after the command were sent before TLS and must not count
	// as sent within it (a command injected in cleartext).
	if n := s.cr.Buffered() + s.in.drop(); n > 0 {
		_, _ = s.cr.Discard(s.cr.Buffered())
		s.cfg.Log.Warn("relay: octets after STARTTLS dropped", "ip", s.ip(), "octets", n)
	}
	s.reply(frontend.Reply{Code: 220, Status: frontend.StatusOK, Text: "Ready to start TLS"})
	if err := s.flush(); err != nil {
		return errEnd
	}
	if s.tx.open() {
		s.logTransaction("starttls")
	}
	if s.srv != nil {
		s.srv.close(true, s.prog)
		s.srv = nil
	}
	tc := tls.Server(s.netConn(), s.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(s.cfg.Dialogue.CommandTimeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.cfg.Log.Info("relay: TLS handshake failed", "ip", s.ip(), "error", err.Error())
		s.end = "tls-handshake"
		return errEnd
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	s.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	s.client = tc
	s.in.conn = tc
	s.cr.Reset(&s.in)
	s.cw.Reset(tc)
	// The session starts over (RFC 3207 section 4.2).
	s.helo, s.heloBogus, s.heloReply, s.authed, s.tx = "", "", nil, false, transaction{}
	return nil
}
