package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	Sender     string   // empty for a bounce (MAIL FROM:<>)
	Recipients []string // at least one
}

// MaxEnvelope bounds the qmail-queue envelope that is read into memory.
const MaxEnvelope = 4 << 20

// ErrEnvelope marks an envelope that does not follow qmail-queue(8).
var ErrEnvelope = errors.New("malformed envelope")

// ReadEnvelope reads a qmail-queue envelope (F<sender>\0T<rcpt>\0...\0)
// and returns it with the exact bytes read, which are handed on unchanged.
func ReadEnvelope(r io.Reader) (Envelope, []byte, error) {
	br := bufio.NewReader(io.LimitReader(r, MaxEnvelope+1))
	var raw bytes.Buffer
	var env Envelope
	first := true
	for {
		field, err := br.ReadBytes(0)
		raw.Write(field)
		if raw.Len() > MaxEnvelope {
			return env, nil, fmt.Errorf("%w: longer than %d bytes", ErrEnvelope, MaxEnvelope)
		}
		if err == io.EOF {
			return env, nil, fmt.Errorf("%w: end of input before the final NUL", ErrEnvelope)
		}
		if err != nil {
			return env, nil, fmt.Errorf("read envelope: %w", err)
		}
		field = field[:len(field)-1]
		switch {
		case first:
			if len(field) == 0 || field[0] != 'F' {
				return env, nil, fmt.Errorf("%w: does not start with F", ErrEnvelope)
			}
			env.Sender = string(field[1:])
			first = false
		case len(field) == 0:
			if len(env.Recipients) == 0 {
				return env, nil, fmt.Errorf("%w: no recipient", ErrEnvelope)
			}
			return env, raw.Bytes(), nil
		case field[0] == 'T':
			env.Recipients = append(env.Recipients, string(field[1:]))
		default:
			return env, nil, fmt.Errorf("%w: field %q is neither T nor the end", ErrEnvelope, Sanitize(string(field), 40))
		}
	}
}

// Bytes renders the envelope in qmail-queue form.
func (e Envelope) Bytes() []byte {
	var b bytes.Buffer
	b.WriteString("F" + e.Sender + "\x00")
	for _, r := range e.Recipients {
		b.WriteString("T" + r + "\x00")
	}
	b.WriteByte(0)
	return b.Bytes()
}

// SplitRecipients splits a recipient list given as chasquid's RCPT_TO
// (space-separated), exim's $recipients (comma-separated) or several
// --rcpt flags.
func SplitRecipients(list ...string) []string {
	var out []string
	for _, s := range list {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			out = append(out, strings.Trim(f, "<>"))
		}
	}
	return out
}
