package frontend

import (
	"strconv"
	"strings"
)

// Status is an RFC 3463 enhanced status code, class.subject.detail
// ("5.7.1"). The zero Status is none: the reply has no enhanced code.
type Status struct{ Class, Subject, Detail uint16 }

// IsZero reports whether s is no code at all.
func (s Status) IsZero() bool { return s == Status{} }

func (s Status) String() string {
	if s.IsZero() {
		return ""
	}
	b := make([]byte, 0, 12)
	b = strconv.AppendUint(b, uint64(s.Class), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(s.Subject), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(s.Detail), 10)
	return string(b)
}

// The enhanced codes mxfront gives (RFC 3463, RFC 7372).
var (
	StatusOK           = Status{2, 0, 0}
	StatusPolicy       = Status{5, 7, 1} // not authorized: lists, HELO (4.7.1 when temporary)
	StatusSecurity     = Status{4, 7, 0} // too many connections, errors, commands
	StatusProtocol     = Status{5, 5, 1} // bad sequence of commands, early talker
	StatusSyntax       = Status{5, 5, 2}
	StatusArgs         = Status{5, 5, 4}
	StatusSystem       = Status{4, 3, 0} // internal error, PROGRAM could not run
	StatusNotAccepting = Status{4, 3, 2} // shutting down, or out of our own resources
)

// Reply is one SMTP reply mxfront writes: a code, an enhanced code (none
// for the greeting and HELO's answer) and its text. Text with line feeds is
// a multi-line reply, each line with the code and the enhanced code. Text
// is never from the network unless it went through sanitize.
type Reply struct {
	Code   int
	Status Status
	Text   string
}

// Temporary reports whether r is a 4xx reply.
func (r Reply) Temporary() bool { return r.Code/100 == 4 }

// Temp returns r made temporary: a 5xx reply becomes 451, its enhanced
// code of class 4 (--temp, -c).
func (r Reply) Temp() Reply {
	if r.Code/100 == 5 {
		r.Code = 451
		if !r.Status.IsZero() {
			r.Status.Class = 4
		}
	}
	return r
}

// String is the reply as one line for a log field: "554 5.7.1 text" (the
// lines of a multi-line reply joined by "; ").
func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if !r.Status.IsZero() {
		s += " " + r.Status.String()
	}
	return s + " " + strings.ReplaceAll(r.Text, "\n", "; ")
}

// AppendWire appends the reply as it goes on the wire, each line ended by
// CRLF. With more, its last line is written as a continuation ("220-"):
// the rest of the reply comes later (the greeting delay's first line).
func (r Reply) AppendWire(b []byte, more bool) []byte {
	text := r.Text
	for {
		line, rest, multi := strings.Cut(text, "\n")
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if multi || more {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if !r.Status.IsZero() {
			b = append(b, r.Status.String()...)
			b = append(b, ' ')
		}
		b = append(b, line...)
		b = append(b, '\r', '\n')
		if !multi {
			return b
		}
		text = rest
	}
}

// Wire is AppendWire into a new string.
func (r Reply) Wire() string { return string(r.AppendWire(nil, false)) }

// closing is a 421 reply: the server closes the connection after it. RFC
// 5321 puts the server's name first in its text.
func closing(host string, st Status, text string) Reply {
	return Reply{Code: 421, Status: st, Text: orLocalhost(host) + " " + text}
}

// InternalError is the 421 of a bug that struck a connection: the client
// retries later.
func InternalError(host string) Reply {
	return closing(host, StatusSystem, "Internal error, try again later")
}

// Unavailable is the 421 of a client that cannot be served now: PROGRAM
// could not run, or the configuration is wrong.
func Unavailable(host string) Reply {
	return closing(host, StatusSystem, "Service temporarily unavailable")
}

// TooBusy is the 421 of a client turned away by a limit (serve mode).
func TooBusy(host, text string) Reply { return closing(host, StatusSecurity, text) }

// Overloaded is the 421 of a client turned away because serve is at a
// ceiling of its own resources (fds, threads), not at a configured limit.
func Overloaded(host string) Reply {
	return closing(host, StatusNotAccepting, "Too busy, try again later")
}

// ShuttingDown is the 421 of a refusal dialogue cut short by a stop.
func ShuttingDown(host string) Reply {
	return closing(host, StatusNotAccepting, "Service shutting down, try again later")
}

func orLocalhost(s string) string {
	if s == "" {
		return "localhost"
	}
	return s
}
