package main

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/config"
	"github.com/urfave/cli/v2"
)

// chainArgv parses args with the cli application as chain mode does and
// returns PROGRAM's argv and the value of every flag, or nil when the flags
// did not parse.
func chainArgv(args []string) ([]string, map[string]string) {
	var got []string
	var values map[string]string
	app := chainApp()
	app.Action = func(c *cli.Context) error {
		got, values = c.Args().Slice(), optionValues(cliOptions{c})
		return nil
	}
	if code := runApp(app, []string{"mxfront"}, args, io.Discard); code != 0 {
		return nil, nil
	}
	return got, values
}

// optionValues renders every policy flag's value for comparison.
func optionValues(o config.Options) map[string]string {
	m := map[string]string{}
	for _, s := range slices.Concat(config.AllSpecs()...) {
		switch s.Kind {
		case config.KindBool:
			m[s.Name] = fmt.Sprint(o.Bool(s.Name))
		case config.KindString:
			m[s.Name] = o.String(s.Name)
		case config.KindList:
			m[s.Name] = fmt.Sprintf("%q", o.StringSlice(s.Name))
		case config.KindInt:
			m[s.Name] = fmt.Sprint(o.Int(s.Name))
		case config.KindDuration:
			m[s.Name] = o.Duration(s.Name).String()
		}
	}
	return m
}

// The fast parser of chain mode and the cli application agree on PROGRAM
// and on every flag, whenever the fast parser takes the arguments.
func checkFastAgrees(t *testing.T, args []string) {
	fo, fargv, ok := config.ParseChain(args)
	argv, values := chainArgv(args)
	if !ok || len(fargv) == 0 {
		return // the cli application handles these
	}
	if argv == nil {
		t.Fatalf("%q: the fast parser took what the cli application refuses", args)
	}
	if !slices.Equal(fargv, argv) {
		t.Fatalf("%q: fast argv %q, cli argv %q", args, fargv, argv)
	}
	if fv := optionValues(fo); !reflect.DeepEqual(fv, values) {
		t.Fatalf("%q: fast values %v\ncli values %v", args, fv, values)
	}
}

func TestFastParserAgrees(t *testing.T) {
	for _, args := range [][]string{
		{"--deny", "10.0.0.0/8", "--deny", "192.0.2.1 text", "prog", "-x"},
		{"-deny=10.0.0.0/8", "--temp", "--", "prog"},
		{"--temp=false", "--refuse-at", "greeting", "--max-errors", "0x10", "prog"},
		{"--command-timeout", "2d3h", "--session-timeout=90s", "--hostname", "mx", "prog"},
		{"--log", "none", "--allow-file", "a", "--allow-file", "b", "--", "--", "x"},
		{"--max-rcpts", "7", "--max-commands=9", "-deny-file", "f", "prog"},
	} {
		checkFastAgrees(t, args)
		if _, argv, ok := config.ParseChain(args); !ok || len(argv) == 0 {
			t.Errorf("%q: the fast parser stepped aside", args)
		}
	}
	for _, args := range [][]string{
		{"--help"}, {"--version"}, {"--bogus", "prog"}, {"--max-errors", "x", "prog"},
		{"--command-timeout", "5", "prog"}, {"--deny"}, {"---deny", "x", "prog"}, {"--temp=maybe", "prog"},
	} {
		if _, argv, ok := config.ParseChain(args); ok && len(argv) > 0 {
			t.Errorf("%q: the fast parser took it (argv %q); the cli application must answer", args, argv)
		}
	}
}

func TestChainArgv(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--deny", "10.0.0.0/8", "prog", "-x", "--deny", "y"}, []string{"prog", "-x", "--deny", "y"}},
		{[]string{"--deny", "10.0.0.0/8", "--", "prog", "-x", "--deny", "y"}, []string{"prog", "-x", "--deny", "y"}},
		{[]string{"--", "serve", "--listen", "x"}, []string{"serve", "--listen", "x"}},
		{[]string{"--temp", "--", "check", "1.2.3.4"}, []string{"check", "1.2.3.4"}},
		{[]string{"--deny", "10.0.0.0/8", "help"}, []string{"help"}},
		{[]string{"/usr/sbin/exim4", "-bs"}, []string{"/usr/sbin/exim4", "-bs"}},
		{[]string{"--deny=192.0.2.0/24", "qmail-smtpd", "--", "x"}, []string{"qmail-smtpd", "--", "x"}},
		{[]string{"--hostname", "mx.example.org", "--refuse-at", "greeting", "--", "--weird-prog"}, []string{"--weird-prog"}},
	}
	for _, tt := range tests {
		checkFastAgrees(t, tt.args)
		if got, _ := chainArgv(tt.args); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("mxfront %s: PROGRAM argv %q, want %q", strings.Join(tt.args, " "), got, tt.want)
		}
	}
}

func TestPermute(t *testing.T) {
	flags := checkFlags()
	tests := []struct{ in, want []string }{
		{[]string{"192.0.2.7", "--deny", "192.0.2.0/24"}, []string{"--deny", "192.0.2.0/24", "--", "192.0.2.7"}},
		{[]string{"--temp", "192.0.2.7", "--helo", "x.example"}, []string{"--temp", "--helo", "x.example", "--", "192.0.2.7"}},
		{[]string{"192.0.2.7", "--deny=192.0.2.0/24"}, []string{"--deny=192.0.2.0/24", "--", "192.0.2.7"}},
		{[]string{"--", "-1"}, []string{"--", "-1"}},
		{[]string{"--temp"}, []string{"--temp"}},
	}
	for _, tt := range tests {
		if got := permute(tt.in, flags); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("permute(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"500ms", 500 * time.Millisecond, true},
		{"5m", 5 * time.Minute, true},
		{"24h", 24 * time.Hour, true},
		{"36d", 36 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0", 0, true},
		{"d", 0, false},
		{"-5m", 0, false},
		{"5", 0, false},
		{"1dd", 0, false},
		{"99999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := config.ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("config.ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzChainArgv: whatever the arguments, PROGRAM's argv is a suffix of
// them, untouched, and it starts right after "--" when "--" ends the flags.
func FuzzChainArgv(f *testing.F) {
	f.Add("--deny\x0010.0.0.0/8\x00prog\x00-x\x00--deny\x00y")
	f.Add("--\x00serve")
	f.Add("--temp\x00--hostname\x00mx\x00--\x00--\x00a")
	f.Add("--refuse-at=greeting\x00-x")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		checkFastAgrees(t, args)
		got, _ := chainArgv(args)
		if got == nil {
			return
		}
		if len(got) > len(args) || !slices.Equal(args[len(args)-len(got):], got) {
			t.Fatalf("argv %q is not a suffix of %q", got, args)
		}
	})
}
