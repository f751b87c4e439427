package recipients

import (
	"context"
	"os"
	"strings"
)

// Verdict is what a source says of a recipient.
type Verdict uint8

const (
	Invalid Verdict = iota // no such recipient
	Valid
	Defer  // the source said "try later" (RCPTCHECK's exit 111)
	Unsure // the source failed: the caller accepts the recipient, and logs Err
)

func (v Verdict) String() string {
	return [...]string{"invalid", "valid", "defer", "unsure"}[min(int(v), 3)]
}

// Query is one recipient to judge, with what a command is told of it.
type Query struct {
	Recipient string // the address, as the client gave it
	Sender    string // MAIL FROM's address ("" for <>)
	RemoteIP  string
}

// Result is the sources' answer: the verdict, the source that gave it,
// and for a command its first line of output, or the error that made a
// source unsure.
type Result struct {
	Verdict Verdict
	Source  string
	Said    string
	Err     error
}

// Set is the recipient sources of a site: valid when any source says so.
// The zero Set has no source (Empty).
type Set struct {
	Lists   []*List
	CDBs    []ValidRcptTo
	Command *Command
}

// Empty reports whether the set has no source at all.
func (s *Set) Empty() bool {
	return s == nil || len(s.Lists) == 0 && len(s.CDBs) == 0 && s.Command == nil
}

// Check asks the sources about q, cheapest first, until one says valid.
// A failing source makes the answer Unsure unless another says valid;
// "try later" from a command wins over the others' invalid. The bare
// address postmaster is always valid (RFC 5321 section 4.5.1).
func (s *Set) Check(ctx context.Context, q Query) Result {
	addr := Normal(q.Recipient)
	if addr == "postmaster" {
		return Result{Verdict: Valid, Source: "RFC 5321"}
	}
	// Of the answers that are not valid, the most doubtful counts:
	// Unsure, then Defer, then Invalid; the first of its kind.
	rank := [...]int{Invalid: 0, Defer: 1, Unsure: 2}
	best := Result{Verdict: Invalid}
	worse := func(r Result) {
		if best.Source == "" || rank[r.Verdict] > rank[best.Verdict] {
			best = r
		}
	}
	for _, l := range s.Lists {
		if l.Lookup(addr) == Valid {
			return Result{Verdict: Valid, Source: l.Name}
		}
		worse(Result{Verdict: Invalid, Source: l.Name})
	}
	for _, c := range s.CDBs {
		v, err := c.Lookup(addr)
		if v == Valid {
			return Result{Verdict: Valid, Source: c.Path}
		}
		worse(Result{Verdict: v, Source: c.Path, Err: err})
	}
	if s.Command != nil {
		r := s.Command.Check(ctx, q)
		if r.Verdict == Valid {
			return r
		}
		worse(r)
	}
	return best
}

// Domains are the local domains of a site (qmail's rcpthosts): one a
// line, "example.org" for the domain itself, ".example.org" for any
// domain below it. Matching ignores case and a trailing dot.
type Domains struct {
	exact  map[string]bool
	suffix []string // ".example.org"
}

// ReadDomains reads the domains files at paths, together.
func ReadDomains(paths ...string) (*Domains, error) {
	var lines []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	return ParseDomains(lines), nil
}

// ParseDomains reads the lines of a domains file.
func ParseDomains(lines []string) *Domains {
	d := &Domains{exact: map[string]bool{}}
	for _, line := range lines {
		line = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(line)), ".")
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '.':
			d.suffix = append(d.suffix, line)
		default:
			d.exact[line] = true
		}
	}
	return d
}

// Contains reports whether domain is local.
func (d *Domains) Contains(domain string) bool {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if d.exact[domain] {
		return true
	}
	for _, s := range d.suffix {
		if strings.HasSuffix(domain, s) {
			return true
		}
	}
	return false
}

// Len is the number of lines that name domains.
func (d *Domains) Len() int { return len(d.exact) + len(d.suffix) }
