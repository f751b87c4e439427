package filter

import (
	"fmt"
	"strings"
)

// Action is what the MTA should do with the message.
type Action int

const (
	Accept   Action = iota // queue it
	Tempfail               // 4xx: the sender retries later
	Reject                 // 5xx: the sender gets the refusal
)

func (a Action) String() string {
	switch a {
	case Tempfail:
		return "tempfail"
	case Reject:
		return "reject"
	}
	return "accept"
}

// Verdict is the decision on one message and the SMTP reply that carries it.
type Verdict struct {
	Action   Action
	Code     int    // 250, 451, 552, 554 ...
	Enhanced string // RFC 3463, e.g. "5.7.1"
	Text     string // printable ASCII, one line
}

// Temporary reports whether the sender should try again later.
func (v Verdict) Temporary() bool { return v.Action == Tempfail }

// Reply is the SMTP reply line, e.g. "554 5.7.1 message contains a virus":
// printable ASCII, one line, within RFC 5321's 512 octets.
func (v Verdict) Reply() string {
	return fmt.Sprintf("%d %s %s", v.Code, v.Enhanced, replyText(v.Text))
}

// MaxReplyText bounds a reply's text so that the whole line ("554 5.7.1 "
// and CRLF included) stays within RFC 5321's 512 octets.
const MaxReplyText = 400

// replyText makes a finding's text fit an SMTP reply line. Findings quote
// the message (a Content-Type, a file name), whose bytes may be anything: a
// CR or LF would end the reply early and let the rest pass for a second
// reply.
func replyText(s string) string { return Sanitize(s, MaxReplyText) }

var accepted = Verdict{Action: Accept, Code: 250, Enhanced: "2.0.0", Text: "message accepted"}

// Mode is what a check does when it finds something.
type Mode int

const (
	Off    Mode = iota // the check does not run
	Log                // the finding is logged, the message accepted
	Defer              // the finding defers the message (4xx)
	Refuse             // the finding refuses the message (5xx)
)

// ParseMode reads off|log|tempfail|reject.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "off":
		return Off, nil
	case "log":
		return Log, nil
	case "tempfail", "defer":
		return Defer, nil
	case "reject":
		return Refuse, nil
	}
	return Off, fmt.Errorf("mode %q: want off, log, tempfail or reject", s)
}

func (m Mode) String() string {
	return [...]string{"off", "log", "tempfail", "reject"}[m]
}

// finding is what a check found: a permanent-class problem with the
// message (refused or deferred according to the check's Mode).
type finding struct {
	code     int    // the 5xx code when refused (554, 552)
	enhanced string // the 5.x.x code when refused
	text     string
}

// verdictFor renders a finding under a mode; Log and Off accept.
func verdictFor(m Mode, f finding) Verdict {
	switch m {
	case Refuse:
		return Verdict{Action: Reject, Code: f.code, Enhanced: f.enhanced, Text: replyText(f.text)}
	case Defer:
		return Verdict{Action: Tempfail, Code: 451, Enhanced: "4" + f.enhanced[1:], Text: replyText(f.text)}
	}
	return accepted
}

// worse returns the stronger of two verdicts: a refusal beats a deferral,
// which beats acceptance; the first one found wins a tie.
func worse(a, b Verdict) Verdict {
	if b.Action > a.Action {
		return b
	}
	return a
}

// Sanitize makes s safe for an SMTP reply, a log field or an environment
// variable: printable ASCII only, at most max bytes.
func Sanitize(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		case c == '\t' || c == '\n' || c == '\r':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
