package dnsbl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ednsSize is the EDNS0 UDP payload we offer (the DNS flag day 2020 value).
const ednsSize = 1232

// ServersFromResolvConf returns the name servers of a resolv.conf file as
// HOST:PORT (port 53), in the file's order. This is the production default;
// tests pass their own servers.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dnsbl: %v", err)
	}
	defer f.Close()
	var servers []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		// A link-local server carries its interface: fe80::1%eth0.
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		servers = append(servers, netip.AddrPortFrom(a, 53).String())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dnsbl: %s: %v", path, err)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("dnsbl: %s: no nameserver line", path)
	}
	return servers, nil
}

// checkServer accepts IP:PORT.
func checkServer(s string) error {
	if _, err := netip.ParseAddrPort(s); err != nil {
		return fmt.Errorf("dnsbl: bad DNS server %q: need IP:PORT (%v)", s, err)
	}
	return nil
}

// resolver asks the configured servers, rotating through them on failure.
type resolver struct {
	addrs    []netip.AddrPort
	try      time.Duration // one attempt's wait for an answer
	attempts int
	raw      bool // wait in rawLink, not in Go's network poller
}

func newResolver(servers []string, try time.Duration, raw bool) *resolver {
	addrs := make([]netip.AddrPort, len(servers))
	for i, s := range servers {
		addrs[i] = netip.MustParseAddrPort(s) // checked by checkServer
	}
	return &resolver{
		addrs:    addrs,
		try:      try,
		attempts: max(3, 2*len(servers)),
		raw:      raw && haveRawLink,
	}
}

// exchange is the questions of one Check in flight together: all go out
// at once on one socket per server, the answers are matched by ID, and the
// caller's goroutine does all the waiting. Nothing runs beside it but a
// TCP retry of a truncated answer.
type exchange struct {
	r        *resolver
	link     link
	deadline time.Time
	ctx      context.Context
	pending  []*question // asked and not yet done
	tcpDone  chan *question
	tcpQuit  chan struct{}
	tcpCount int    // TCP retries under way
	buf      []byte // a datagram read, or a query packed: one at a time
}

// question is one name and type asked, with the state of its attempts.
type question struct {
	name    string // fully qualified
	qtype   uint16
	tag     int // the caller's
	id      uint16
	edns    bool
	attempt int       // attempts made; the current one goes to server attempt%len
	due     time.Time // the current attempt ends, or (resend) the next one starts
	resend  bool      // waiting to start the next attempt
	tcp     bool      // the current attempt goes on over TCP
	tcpAns  *reply    // the TCP retry's answer, or
	tcpErr  error     // its error
	// The outcome, once done: an answer, or err.
	answered  bool
	ans       records
	err       error
	lastRcode error
	lastBad   *badAnswer // an answer that could not be used
	lastErr   error
}

// start begins an exchange that ends at deadline, or when ctx is done
// (noticed at once only by the poller). It costs next to nothing until a
// question is asked: a Check answered from the cache sends nothing.
func (r *resolver) start(ctx context.Context, deadline time.Time) *exchange {
	return &exchange{r: r, deadline: deadline, ctx: ctx}
}

// open makes what the first question needs. Few and small allocations: in
// a fresh process each new size of object costs fresh pages, and a page
// fault is dear.
func (x *exchange) open() {
	x.buf, x.pending = make([]byte, maxUDP), make([]*question, 0, 8)
	if x.r.raw {
		x.link = newRawLink(x.r.addrs)
	} else {
		x.link = newPollLink(x.r.addrs, x.ctx)
	}
}

func (x *exchange) close() {
	if x.link != nil {
		x.link.close()
	}
	if x.tcpQuit != nil {
		close(x.tcpQuit)
	}
}

// ask puts one question; its answer comes from next.
func (x *exchange) ask(name string, qtype uint16, tag int) {
	if x.link == nil {
		x.open()
	}
	q := &question{name: name, qtype: qtype, tag: tag, edns: true}
	// IDs unique within the exchange, from math/rand/v2's generator
	// (ChaCha8 seeded by the system: unpredictable to a spoofer, and no
	// system call). Zero stays unused.
	for q.id == 0 || x.find(-1, q.id) != nil {
		q.id = uint16(rand.Uint32())
	}
	x.pending = append(x.pending, q)
	x.send(q, time.Now())
}

// next waits for a question to be done and returns it; nil when none is
// left. A question is done with an answer (ans: NOERROR or NXDOMAIN) or
// with err, once the attempts are spent or the deadline has passed.
func (x *exchange) next() *question {
	for len(x.pending) > 0 {
		now := time.Now()
		if q := x.due(now); q != nil {
			return q
		}
		wait := x.deadline
		for _, q := range x.pending {
			if !q.tcp && q.due.Before(wait) {
				wait = q.due
			}
		}
		if x.tcpCount > 0 {
			// TCP retries report on a channel, the sockets to the
			// link: look at the channel every millisecond.
			if q := x.tcpAnswer(); q != nil {
				if !slices.Contains(x.pending, q) {
					continue // done meanwhile, at the deadline
				}
				if x.answered(q, q.tcpAns, q.tcpErr) {
					return x.done(q)
				}
				continue
			}
			wait = minTime(wait, now.Add(time.Millisecond))
		}
		srv, n, err, ok := x.link.recv(x.buf, wait)
		switch {
		case !ok:
			if x.ctx.Err() != nil {
				x.deadline = now
			}
		case err != nil:
			// A connected socket's error (e.g. port unreachable) is
			// every question's in flight to that server.
			for _, q := range x.pending {
				if !q.resend && !q.tcp && q.attempt%len(x.r.addrs) == srv {
					x.failed(q, err, time.Now())
				}
			}
		default:
			if q := x.datagram(srv, x.buf[:n]); q != nil {
				return q
			}
		}
	}
	return nil
}

// due ends what the clock ends: the deadline, an attempt's wait, a pause.
func (x *exchange) due(now time.Time) *question {
	for _, q := range x.pending {
		switch {
		case !now.Before(x.deadline):
			return x.done(q)
		case q.tcp || now.Before(q.due):
		case q.resend:
			x.send(q, now)
		default:
			x.nextAttempt(q, now) // the attempt timed out
		}
		if q.err != nil {
			return x.done(q)
		}
	}
	return nil
}

// datagram handles what server srv sent; a question, if now done.
func (x *exchange) datagram(srv int, b []byte) *question {
	if len(b) < 2 {
		return nil
	}
	q := x.find(srv, uint16(b[0])<<8|uint16(b[1]))
	if q == nil {
		return nil // late, or not ours
	}
	if len(b) >= maxUDP {
		// It filled the buffer and may have been cut: read it as
		// truncated (only its question), and ask over TCP.
		b[2] |= flagTC >> 8
	}
	var r reply
	err := unpack(b, &r)
	if err == nil {
		err = mismatch(q, &r)
	}
	if err != nil {
		// Not an answer to q, maybe not even from the server: keep
		// waiting, and tell of it if nothing better comes.
		q.lastBad = &badAnswer{fmt.Sprintf("udp %s: %v", x.r.addrs[srv], err)}
		return nil
	}
	if r.truncated {
		x.startTCP(q)
		return nil
	}
	if x.answered(q, &r, nil) {
		return x.done(q)
	}
	return nil
}

// mismatch tells how r fails to be a response to q's question; nil when
// it is one. The ID is checked by the caller.
func mismatch(q *question, r *reply) error {
	switch {
	case !r.response:
		return errors.New("a query, not an answer")
	case r.opcode != 0:
		return fmt.Errorf("an answer of OPCODE %d, not QUERY", r.opcode)
	case r.qtype != q.qtype || r.qclass != classINET || !nameIs(r.qname, q.name):
		return fmt.Errorf("an answer to another question: %s type %d class %d", nameText(r.qname, 0), r.qtype, r.qclass)
	}
	return nil
}

// find returns the question in flight to server srv (any when -1) with id.
func (x *exchange) find(srv int, id uint16) *question {
	for _, q := range x.pending {
		if q.id == id && (srv < 0 || !q.resend && !q.tcp && q.attempt%len(x.r.addrs) == srv) {
			return q
		}
	}
	return nil
}

// answered takes an answer (or a TCP error) for q's current attempt and
// reports whether q is done.
func (x *exchange) answered(q *question, r *reply, err error) bool {
	now := time.Now()
	switch {
	case err != nil:
		x.failed(q, err, now)
	case r.rcode == rcodeNameError && (len(r.addrs) > 0 || r.txts > 0 || r.ptr != nil || r.mail != nil):
		// "No such name", and yet records of it: which to believe?
		detail := fmt.Sprintf("NXDOMAIN answer with %d A and %d TXT records", len(r.addrs), r.txts)
		if r.ptr != nil || r.mail != nil {
			detail = "NXDOMAIN answer with PTR, MX or AAAA records"
		}
		x.failed(q, &badAnswer{detail}, now)
	case r.rcode == rcodeSuccess || r.rcode == rcodeNameError:
		q.answered, q.ans = true, r.records
		q.ans.nxdomain = r.rcode == rcodeNameError
		return true
	case r.rcode == rcodeFormatError && q.edns:
		// A server that does not know EDNS0: the same attempt without.
		q.edns = false
		x.transmit(q, now, q.due)
	default:
		q.lastRcode = rcodeError{r.rcode}
		x.nextAttempt(q, now)
	}
	return q.err != nil
}

// failed ends q's attempt with a network error. A refused datagram fails
// at once: pause before the next attempt rather than spin through them
// faster than a server could answer.
func (x *exchange) failed(q *question, err error, now time.Time) {
	if bad, ok := err.(*badAnswer); ok {
		q.lastBad = bad
	} else {
		q.lastErr = err
	}
	if isTimeout(err) {
		x.nextAttempt(q, now)
		return
	}
	q.attempt++
	q.resend, q.due = true, now.Add(x.r.try/10)
}

// nextAttempt moves q on to its next attempt, or ends it.
func (x *exchange) nextAttempt(q *question, now time.Time) {
	q.attempt++
	x.send(q, now)
}

// send starts q's current attempt, or ends q when the attempts are spent.
func (x *exchange) send(q *question, now time.Time) {
	q.resend = false
	if q.attempt >= x.r.attempts {
		q.err = q.failure(false)
		return
	}
	x.transmit(q, now, minTime(now.Add(x.r.try), x.deadline))
}

// transmit sends q's query to the server of its current attempt, which
// ends at due.
func (x *exchange) transmit(q *question, now, due time.Time) {
	q.due = due
	b, err := appendQuery(x.buf[:0], q.id, q.name, q.qtype, q.edns)
	if err == nil {
		err = x.link.send(q.attempt%len(x.r.addrs), b)
	}
	if err != nil {
		x.failed(q, err, now)
	}
}

// failure is why q could not be answered: a DNS error code, or an answer
// that could not be used, is more telling than a timeout.
func (q *question) failure(late bool) error {
	switch {
	case q.lastRcode != nil:
		return q.lastRcode
	case q.lastBad != nil:
		return q.lastBad
	case late || q.lastErr == nil || isTimeout(q.lastErr):
		return errTimeout
	}
	return q.lastErr
}

// done takes q out of the exchange.
func (x *exchange) done(q *question) *question {
	if !q.answered && q.err == nil {
		q.err = q.failure(true)
	}
	x.pending = slices.DeleteFunc(x.pending, func(p *question) bool { return p == q })
	return q
}

// startTCP asks q again over TCP, the same server, within the attempt.
func (x *exchange) startTCP(q *question) {
	// Two octets of length, then the query (RFC 1035 section 4.2.2).
	query, err := appendQuery(make([]byte, 2, 2+maxQuery), q.id, q.name, q.qtype, q.edns)
	if err != nil {
		x.failed(q, err, time.Now()) // not seen: it was packed for UDP
		return
	}
	query[0], query[1] = byte((len(query)-2)>>8), byte(len(query)-2)
	if x.tcpDone == nil {
		x.tcpDone, x.tcpQuit = make(chan *question), make(chan struct{})
	}
	q.tcp = true
	x.tcpCount++
	server, due := x.r.addrs[q.attempt%len(x.r.addrs)], q.due
	go func() {
		q.tcpAns, q.tcpErr = askTCP(server, query, due, q) // read by the loop after the handover
		select {
		case x.tcpDone <- q:
		case <-x.tcpQuit:
		}
	}()
}

// tcpAnswer returns a question whose TCP retry ended, if any.
func (x *exchange) tcpAnswer() *question {
	select {
	case q := <-x.tcpDone:
		x.tcpCount--
		q.tcp = false
		return q
	default:
		return nil
	}
}

// askTCP sends q's query (length included) to server over TCP and reads
// the answer, all before deadline. It only reads q's question and ID.
// An answer that came and cannot be used is a *badAnswer: cut short by
// the server's close, malformed, for another question, or truncated (TC)
// again, which leaves nowhere else to ask.
func askTCP(server netip.AddrPort, query []byte, deadline time.Time, q *question) (*reply, error) {
	c, err := dialTCP(server, deadline)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return &badAnswer{fmt.Sprintf("tcp %s: ", server) + fmt.Sprintf(format, args...)}
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, bad("closed without an answer")
		}
		return nil, fmt.Errorf("tcp %s: reading the answer's length: %w", server, err)
	}
	b := make([]byte, u16(n[:]))
	if k, err := io.ReadFull(c, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, bad("closed after %d of the answer's %d octets", k, len(b))
		}
		return nil, fmt.Errorf("tcp %s: reading an answer of %d octets: %w", server, len(b), err)
	}
	r := new(reply)
	if err := unpack(b, r); err != nil {
		return nil, bad("%v", err)
	}
	if r.id != q.id {
		return nil, bad("an answer with another ID")
	}
	if err := mismatch(q, r); err != nil {
		return nil, bad("%v", err)
	}
	if r.truncated {
		return nil, bad("answer truncated (TC) over TCP too")
	}
	return r, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

var errTimeout = errors.New("timeout")

type rcodeError struct{ rcode int }

// badAnswer is an answer that came and could not be used; it says why.
type badAnswer struct{ detail string }

func (e *badAnswer) Error() string { return e.detail }

func (e rcodeError) Error() string { return rcodeName(e.rcode) }
