package relay

import (
	"strconv"
	"strings"
	"time"
)

// transaction is one mail transaction as the log line tells it.
type transaction struct {
	mail        bool   // the server accepted MAIL: RCPTs may follow
	from        string // sanitised
	rawFrom     string // for a recipient command's SENDER
	fromNote    string // what a sender check found (log mode)
	fromRefused string // the relay's refusal of MAIL
	rcpts       []string
	nRcpts      int
	accepted    int
	notes       []string // what the recipient checks found
	size        int64
	start       time.Time
}

// maxLoggedRcpts bounds the recipients a log line names; it counts them
// all.
const maxLoggedRcpts = 10

func (t *transaction) open() bool { return t.mail }

func (t *transaction) add(addr, outcome string) {
	t.nRcpts++
	if len(t.rcpts) < maxLoggedRcpts {
		t.rcpts = append(t.rcpts, sanitized(addr)+" "+outcome)
	}
}

// txAttrs are the fields of a transaction's line: the client, its HELO,
// the sender, each recipient with what became of it.
func (s *session) txAttrs() []any {
	t := &s.tx
	attrs := []any{"ip", s.ip(), "port", int(s.p.Client.Remote.Port()), "helo", s.helo}
	if s.heloBogus != "" {
		attrs = append(attrs, "helo_bogus", s.heloBogus)
	}
	attrs = append(attrs, "mail", t.from)
	if t.fromRefused != "" {
		attrs = append(attrs, "mail_refused", t.fromRefused)
	}
	if t.fromNote != "" {
		attrs = append(attrs, "mail_note", t.fromNote)
	}
	rcpts := strings.Join(t.rcpts, "; ")
	if extra := t.nRcpts - len(t.rcpts); extra > 0 {
		rcpts += "; +" + strconv.Itoa(extra) + " more"
	}
	attrs = append(attrs, "rcpt", rcpts, "accepted", t.accepted, "refused", t.nRcpts-t.accepted)
	if len(t.notes) > 0 {
		attrs = append(attrs, "rcpt_notes", strings.Join(t.notes[:min(len(t.notes), maxLoggedRcpts)], "; "))
	}
	if s.tls != "" {
		attrs = append(attrs, "tls", s.tls)
	}
	return attrs
}

// logTransaction writes the line of a transaction that ended without a
// message (end says how: rset, quit, eof, mail-refused, ...).
func (s *session) logTransaction(end string) {
	if end == "" {
		end = s.end
	}
	s.cfg.Log.Info("transaction", append(s.txAttrs(), "end", end)...)
}

// logDelivered writes the line of a transaction whose message the server
// answered: its reply, the message's size.
func (s *session) logDelivered(final reply) {
	end := "delivered"
	if final.code/100 != 2 {
		end = "message refused"
	}
	attrs := append(s.txAttrs(), "size", s.tx.size, "reply", final.text(), "end", end,
		"duration", time.Since(s.tx.start).Round(time.Millisecond).String())
	s.cfg.Log.Info("transaction", attrs...)
}

// logEnd writes the session's last line.
func (s *session) logEnd(err error) {
	attrs := []any{"ip", s.ip(), "port", int(s.p.Client.Remote.Port()), "helo", s.helo,
		"messages", s.messages, "bad_rcpts", s.badRcpts, "end", s.end}
	if s.passthru {
		attrs = append(attrs, "inspection", "ended at STARTTLS (no certificate): passed through")
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.cfg.Log.Info("relay ended", attrs...)
}
