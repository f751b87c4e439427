package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every flag `mxfront --help` shows (chain, serve and check) is documented
// in mxfront(8), and every flag the page documents exists.
func TestManPageDocumentsEveryFlag(t *testing.T) {
	page, err := os.ReadFile("../../man/mxfront.8.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"help": true, "version": true}
	for _, app := range []*cli.App{chainApp(), serveApp(), checkApp()} {
		for _, f := range app.Flags {
			for _, n := range f.Names() {
				known[n] = true
				dash := "--"
				if len(n) == 1 {
					dash = "-"
				}
				if !strings.Contains(string(page), "**"+dash+n+"**") {
					t.Errorf("mxfront %s: flag %s%s is not in man/mxfront.8.md", app.Name, dash, n)
				}
			}
		}
	}
	// Flags named in the page's definitions ("**--name**" at a line start).
	for _, line := range strings.Split(string(page), "\n") {
		if !strings.HasPrefix(line, "**-") {
			continue
		}
		for _, part := range strings.Split(line, "**") {
			name := strings.TrimLeft(part, "-")
			if strings.HasPrefix(part, "-") && name != "" && !strings.ContainsAny(name, " =") && !known[name] {
				t.Errorf("man/mxfront.8.md documents %s, which mxfront does not have", part)
			}
		}
	}
}

// An underscore in a variable's name (LISTEN_FDS, AUTH_AS) that markdown
// read as emphasis renders as "LISTEN\fIFDS" in roff: italics starting
// between two capitals (not after a \fP) are that mistake.
func TestManPagesNoStrayEmphasis(t *testing.T) {
	stray := regexp.MustCompile(`(?:^|[^f])[A-Z]\\fI[A-Z]`)
	for _, page := range []string{"../../man/mxfront.8", "../../man/mxfilter.8"} {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if stray.MatchString(line) {
				t.Errorf("%s:%d: emphasis inside a word (an unescaped _ in the .md?): %s", page, i+1, line)
			}
		}
	}
}
