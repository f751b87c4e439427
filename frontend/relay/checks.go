package relay

import (
	"strings"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/recipients"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// The enhanced codes of the relay's own refusals (RFC 3463, RFC 7505).
var (
	statusBadSender   = frontend.Status{Class: 5, Subject: 1, Detail: 7} // bad sender's address syntax
	statusBadDomain   = frontend.Status{Class: 5, Subject: 1, Detail: 8} // bad sender's system address
	statusNullMX      = frontend.Status{Class: 5, Subject: 7, Detail: 27}
	statusBadDest     = frontend.Status{Class: 5, Subject: 1, Detail: 3} // bad destination address syntax
	statusNoMailbox   = frontend.Status{Class: 5, Subject: 1, Detail: 1}
	statusTooMany     = frontend.Status{Class: 4, Subject: 5, Detail: 3}
	statusDNSTemp     = frontend.Status{Class: 4, Subject: 4, Detail: 3}
	statusSourcesTemp = frontend.Status{Class: 4, Subject: 3, Detail: 0}
)

// trusted: the verdict trusted the client (RELAYCLIENT, RBLSMTPD, an
// allow list, a DNS allow list), or the server accepted its AUTH. Its
// bogus HELO and sender are logged, never refused.
func (s *session) trusted() bool {
	return s.p.Verdict.Action == frontend.Trusted || s.authed
}

// mayRelay: the client may send to domains that are not local.
func (s *session) mayRelay() bool {
	v := s.p.Verdict
	if s.authed || s.p.Client.RelayClient {
		return true
	}
	if v.Action != frontend.Trusted {
		return false
	}
	return v.By == frontend.ByRelayClient || v.By == frontend.ByRBLSMTPD || v.By == frontend.ByAllowList
}

// enforced reports whether a check in mode c refuses this client.
func (s *session) enforced(c Check) bool {
	return c == Refuse && !s.cfg.Observe && !s.trusted()
}

// hello relays HELO or EHLO after judging its name; a bogus name under
// --helo-check refuse makes every RCPT of the session 554.
func (s *session) hello(verb, arg string, line []byte) error {
	if arg == "" || verb == "HELO" && strings.ContainsAny(arg, " \t") {
		s.errors++
		s.reply(frontend.Reply{Code: 501, Status: frontend.StatusArgs, Text: "Syntax: " + verb + " hostname"})
		return nil
	}
	name, _, _ := strings.Cut(arg, " ")
	if s.tx.open() {
		s.logTransaction("helo")
	}
	s.tx = transaction{}
	s.helo, s.heloBogus, s.heloReply = sanitized(name), "", nil
	h := s.cfg.Dialogue.HELO
	if s.rules.HELO != nil {
		h = *s.rules.HELO
	}
	if why, public := h.Judge(name, s.cfg.Dialogue.Hostname, s.p.Client.Local); why != "" {
		s.heloBogus = why
		if h.Mode == frontend.HELORefuse && !s.cfg.Observe && !s.trusted() {
			s.heloReply = &frontend.Reply{Code: 554, Status: frontend.StatusPolicy,
				Text: sanitize.Text("HELO/EHLO name "+s.helo+" rejected: it "+public, sanitize.MaxReason)}
		}
	}
	rp, err := s.ask(line, s.cfg.ServerTimeout)
	if err != nil {
		return err
	}
	if verb == "EHLO" && rp.code == 250 {
		rp = s.editEHLO(rp)
	}
	s.pass(rp)
	return nil
}

// editEHLO takes out of the server's EHLO reply what the relay cannot
// relay: CHUNKING (and BINARYMIME, which needs it); with a certificate of
// its own, the server's STARTTLS gives way to the relay's (never offered
// again within TLS).
func (s *session) editEHLO(rp reply) reply {
	out := reply{code: rp.code}
	var texts []string
	for i, l := range rp.lines {
		text := strings.TrimRight(string(l[min(4, len(l)):]), "\r\n")
		if len(l) < 4 {
			text = ""
		}
		kw, _, _ := strings.Cut(strings.ToUpper(text), " ")
		if i > 0 && (kw == "CHUNKING" || kw == "BINARYMIME" || kw == "STARTTLS" && s.cfg.TLS != nil) {
			continue
		}
		texts = append(texts, text)
	}
	if s.cfg.TLS != nil && s.tls == "" {
		texts = append(texts, "STARTTLS") // ours, in place of the server's
	}
	for i, t := range texts {
		sep := "-"
		if i == len(texts)-1 {
			sep = " "
		}
		out.lines = append(out.lines, []byte(itoa3(rp.code)+sep+t+"\r\n"))
	}
	return out
}

func itoa3(code int) string {
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}

// mail judges MAIL FROM and relays it unless a check refuses it.
func (s *session) mail(arg string, line []byte) error {
	path, _, ok := parsePath(arg, "FROM:")
	if !ok {
		s.errors++
		s.reply(frontend.Reply{Code: 501, Status: frontend.StatusArgs, Text: "Syntax: MAIL FROM:<address>"})
		return nil
	}
	if s.tx.open() {
		// A second MAIL: the server answers 503, and the transaction
		// goes on.
		_, err := s.relayed(line)
		return err
	}
	refusal, note := s.checkSender(path)
	tx := transaction{from: sanitized(path), rawFrom: path, fromNote: note, start: time.Now()}
	if refusal != nil {
		s.reply(*refusal)
		tx.fromRefused = refusal.String()
		s.tx = tx
		s.logTransaction("mail-refused")
		s.tx = transaction{}
		return nil
	}
	rp, err := s.relayed(line)
	if err != nil {
		return err
	}
	if rp.code/100 == 2 {
		tx.mail = true
		s.tx = tx
	}
	return nil
}

// checkSender judges a sender: the syntax of its address, and that its
// domain can receive mail. It returns the refusal (nil: none) and what
// a check found, for the log.
func (s *session) checkSender(path string) (*frontend.Reply, string) {
	if s.cfg.Sender == Off || path == "" {
		return nil, ""
	}
	enforce := s.enforced(s.cfg.Sender)
	judged := func(r frontend.Reply, note string) (*frontend.Reply, string) {
		if !enforce {
			return nil, note
		}
		return &r, note
	}
	addr := sanitized(path)
	domain, why := mailbox(path)
	if why != "" {
		return judged(frontend.Reply{Code: 553, Status: statusBadSender, Text: "Sender address <" + addr + "> rejected: it " + why}, "sender address "+why)
	}
	if s.cfg.Domains == nil || strings.HasPrefix(domain, "[") || !ascii(domain) {
		return nil, ""
	}
	md := s.cfg.Domains.MailDomain(s.ctx, domain)
	d := sanitized(md.Domain)
	switch {
	case md.Exists:
		return nil, ""
	case md.Err != nil:
		s.cfg.Log.Warn("relay: sender domain unknown: DNS failed", "ip", s.ip(), "domain", d, "error", md.Err.Error())
		if s.cfg.DNSFailTemp && !s.cfg.Observe {
			r := frontend.Reply{Code: 451, Status: statusDNSTemp, Text: "Sender domain " + d + ": DNS lookup failed, try again later"}
			return &r, "sender domain lookup failed"
		}
		return nil, "sender domain lookup failed: " + md.Err.Error()
	case md.NullMX:
		return judged(frontend.Reply{Code: 550, Status: statusNullMX, Text: "Sender address <" + addr + "> rejected: " + d + " accepts no mail (null MX)"}, "sender domain has a null MX")
	case md.NXDomain:
		return judged(frontend.Reply{Code: 550, Status: statusBadDomain, Text: "Sender address <" + addr + "> rejected: domain " + d + " does not exist"}, "sender domain does not exist")
	}
	return judged(frontend.Reply{Code: 550, Status: statusBadDomain, Text: "Sender address <" + addr + "> rejected: domain " + d + " has no MX or address record"}, "sender domain has no MX or address")
}

// rcpt judges RCPT TO and relays it unless a check refuses it.
func (s *session) rcpt(arg string, line []byte) error {
	path, _, ok := parsePath(arg, "TO:")
	switch {
	case !ok || path == "":
		s.errors++
		s.reply(frontend.Reply{Code: 501, Status: frontend.StatusArgs, Text: "Syntax: RCPT TO:<address>"})
		return nil
	case !s.tx.open():
		s.errors++
		s.reply(frontend.Reply{Code: 503, Status: frontend.StatusProtocol, Text: "Error: need MAIL command"})
		return nil
	case s.tx.accepted >= s.cfg.Dialogue.MaxRecipients:
		r := frontend.Reply{Code: 452, Status: statusTooMany, Text: "Error: too many recipients"}
		s.reply(r)
		s.tx.add(path, "refused "+r.String())
		return nil
	}
	if r, bad := s.judgeRcpt(path); r != nil {
		s.refuseRcpt(path, *r, bad)
		return nil
	}
	rp, err := s.ask(line, s.cfg.ServerTimeout)
	if err != nil {
		return err
	}
	s.pass(rp)
	if rp.code/100 == 2 {
		s.tx.accepted++
		s.tx.add(path, "accepted")
		return nil
	}
	s.tx.add(path, "refused by the server "+rp.text())
	if rp.code/100 == 5 {
		s.badRcpt()
	}
	return nil
}

// refuseRcpt answers a recipient the relay refused; a bad one (not valid,
// a relay attempt) counts towards --max-bad-rcpts and waits
// --bad-rcpt-delay first.
func (s *session) refuseRcpt(path string, r frontend.Reply, bad bool) {
	if bad && s.cfg.BadRcptDelay > 0 {
		s.flush()
		t := time.NewTimer(s.cfg.BadRcptDelay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
	s.reply(r)
	s.tx.add(path, "refused "+r.String())
	if bad {
		s.badRcpt()
	}
}

func (s *session) badRcpt() {
	s.badRcpts++
	if n := s.cfg.MaxBadRcpts; n > 0 && s.badRcpts >= n && s.end == "" {
		s.closeWith(frontend.StatusSecurity, "Error: too many bad recipients", "bad-rcpts")
	}
}

// checkRcpt judges a recipient: the HELO's refusal, a relay attempt, a
// recipient that does not exist. It returns the refusal (nil: relay it)
// and whether it counts as a bad recipient.
func (s *session) checkRcpt(path string) (*frontend.Reply, bool) {
	if s.heloReply != nil {
		return s.heloReply, false
	}
	if s.cfg.Rcpt == Off {
		return nil, false
	}
	addr := sanitized(path)
	domain := recipients.Domain(recipients.Normal(path))
	enforce := s.cfg.Rcpt == Refuse && !s.cfg.Observe
	judged := func(r frontend.Reply, what string) (*frontend.Reply, bool) {
		s.tx.notes = append(s.tx.notes, addr+" "+what)
		if !enforce {
			return nil, false
		}
		return &r, true
	}
	if _, why := mailbox(path); why != "" && !strings.EqualFold(path, "postmaster") {
		return judged(frontend.Reply{Code: 553, Status: statusBadDest, Text: "Recipient address <" + addr + "> rejected: it " + why}, "has a bad syntax")
	}
	local := true
	if d := s.rules.LocalDomains; d != nil && domain != "" {
		local = d.Contains(domain)
	}
	if !local {
		if s.mayRelay() {
			return nil, false
		}
		return judged(frontend.Reply{Code: 553, Status: frontend.StatusPolicy, Text: "Recipient <" + addr + "> rejected: relay not permitted"}, "is a relay attempt")
	}
	if s.rules.Recipients.Empty() {
		return nil, false
	}
	res := s.rules.Recipients.Check(s.ctx, recipients.Query{Recipient: path, Sender: s.tx.rawFrom, RemoteIP: s.ip()})
	switch res.Verdict {
	case recipients.Invalid:
		return judged(frontend.Reply{Code: 550, Status: statusNoMailbox, Text: "Recipient <" + addr + "> rejected: no such user here"}, "is not a recipient ("+sanitized(res.Source)+")")
	case recipients.Defer:
		r := frontend.Reply{Code: 451, Status: statusSourcesTemp, Text: "Recipient <" + addr + "> cannot be checked now, try again later"}
		s.tx.notes = append(s.tx.notes, addr+" deferred by "+sanitized(res.Source))
		if !enforce {
			return nil, false
		}
		return &r, false
	case recipients.Unsure:
		s.cfg.Log.Error("relay: recipient check failed: accepted", "ip", s.ip(), "rcpt", addr, "error", res.Err.Error())
	}
	return nil, false
}

// judgeRcpt judges a recipient, then greylists it by its triplet.
func (s *session) judgeRcpt(path string) (*frontend.Reply, bool) {
	if r, bad := s.checkRcpt(path); r != nil {
		return r, bad
	}
	return s.greylistRcpt(path), false
}
