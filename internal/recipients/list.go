package recipients

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// List is a --rcpt-file: one address a line; "@domain" makes every address
// of the domain valid; "!address" makes one address invalid all the same
// (a mailbox that was closed, in a domain that takes everything). Blank
// lines and lines starting with '#' are ignored. Matching ignores case.
type List struct {
	Name    string // the file, for log lines
	addrs   map[string]bool
	domains map[string]bool
	except  map[string]bool
}

// maxListLine bounds a line of a list file.
const maxListLine = 1024

// ReadList reads the list file at path.
func ReadList(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseList(f, path)
}

// ParseList reads a list from r; name is the file's, for errors.
func ParseList(r io.Reader, name string) (*List, error) {
	l := &List{Name: name, addrs: map[string]bool{}, domains: map[string]bool{}, except: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxListLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := l.add(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return l, nil
}

func (l *List) add(line string) error {
	if strings.ContainsAny(line, " \t<>") {
		return fmt.Errorf("%q: one address a line, without brackets", clip(line))
	}
	except := strings.HasPrefix(line, "!")
	addr := Normal(strings.TrimPrefix(line, "!"))
	switch {
	case addr == "" || addr == "@":
		return fmt.Errorf("%q: no address", clip(line))
	case strings.HasPrefix(addr, "@"):
		if except {
			return fmt.Errorf("%q: an exception names one address, not a domain", clip(line))
		}
		l.domains[addr[1:]] = true
	case except:
		l.except[addr] = true
	default:
		l.addrs[addr] = true
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// Lookup says whether the normal address addr is valid.
func (l *List) Lookup(addr string) Verdict {
	switch {
	case l.except[addr]:
		return Invalid
	case l.addrs[addr], l.domains[Domain(addr)]:
		return Valid
	}
	return Invalid
}

// Len is the number of entries of every kind.
func (l *List) Len() int { return len(l.addrs) + len(l.domains) + len(l.except) }
