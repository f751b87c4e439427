package dnsbl

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is what a health check found, as a state file keeps it for
// processes that live too short to check for themselves (chain mode):
// when the check ran, and the zones it set aside. Its text form:
//
//	# a comment
//	checked 2025-06-01T12:00:00Z
//	aside bl.example.org 2025-06-01T11:55:00Z refusing: 127.0.0.2 error answer 127.255.255.254; ...
//
// One "checked" line, the time of the check (RFC 3339); one "aside" line
// per zone set aside: its name, since when it fails (RFC 3339), and the
// reason to the end of the line. Blank lines and lines starting with "#"
// are comments; other lines are errors (a state file from a newer mxfront
// is refused, not half read).
type State struct {
	Checked time.Time
	Aside   []Aside
}

// maxStateLine bounds a line of a state file: a zone name and a reason.
const maxStateLine = 4096

// ParseState reads a state file's text. Its Asides are ByStateFile.
func ParseState(b []byte) (State, error) {
	var st State
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if len(line) > maxStateLine {
			return State{}, fmt.Errorf("line %d: longer than %d characters", n+1, maxStateLine)
		}
		key, rest, _ := strings.Cut(line, " ")
		switch key {
		case "checked":
			t, err := stateTime(rest)
			if err != nil {
				return State{}, fmt.Errorf("line %d: bad time %q", n+1, rest)
			}
			st.Checked = t
		case "aside":
			a, err := parseAside(rest)
			if err != nil {
				return State{}, fmt.Errorf("line %d: %v", n+1, err)
			}
			st.Aside = append(st.Aside, a)
		default:
			return State{}, fmt.Errorf("line %d: unknown line %q", n+1, key)
		}
	}
	if st.Checked.IsZero() {
		return State{}, errors.New("no \"checked\" line")
	}
	return st, nil
}

func parseAside(s string) (Aside, error) {
	f := strings.SplitN(s, " ", 3)
	if len(f) < 2 {
		return Aside{}, errors.New("an aside line is: aside ZONE TIME REASON")
	}
	zone, err := zoneName(f[0])
	if err != nil {
		return Aside{}, fmt.Errorf("bad zone name: %v", err)
	}
	since, err := stateTime(f[1])
	if err != nil {
		return Aside{}, fmt.Errorf("bad time %q", f[1])
	}
	a := Aside{Zone: zone, By: ByStateFile, Since: since}
	if len(f) == 3 {
		a.Reason = sanitize(f[2])
	}
	return a, nil
}

// stateTime reads a time of a state file: RFC 3339, kept to the second
// in UTC, as AppendText writes it back.
func stateTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC().Truncate(time.Second)
	if y := t.Year(); y < 1970 || y > 9999 {
		return time.Time{}, errors.New("year out of range")
	}
	return t, nil
}

// AppendText appends st in its text form; the reasons are sanitised and
// kept to one line.
func (st State) AppendText(b []byte) []byte {
	b = append(b, "# mxfront DNS list health (mxfront check --lists --state-file); see mxfront(8)\n"...)
	b = append(b, "checked "...)
	b = st.Checked.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, '\n')
	for _, a := range st.Aside {
		b = append(b, "aside "...)
		b = append(b, a.Zone...)
		b = append(b, ' ')
		b = a.Since.UTC().AppendFormat(b, time.RFC3339)
		if r := sanitize(a.Reason); r != "" {
			b = append(b, ' ')
			b = append(b, r...)
		}
		b = append(b, '\n')
	}
	return b
}
