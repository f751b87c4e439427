package main

import (
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// chainArgv parses args as chain mode does and returns PROGRAM's argv, or
// nil when the flags did not parse.
func chainArgv(args []string) []string {
	var got []string
	app := chainApp()
	app.Action = func(c *cli.Context) error { got = c.Args().Slice(); return nil }
	if code := runApp(app, []string{"mxfront"}, args, io.Discard); code != 0 {
		return nil
	}
	return got
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
		if got := chainArgv(tt.args); !reflect.DeepEqual(got, tt.want) {
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
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
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
		got := chainArgv(args)
		if got == nil {
			return
		}
		if len(got) > len(args) || !slices.Equal(args[len(args)-len(got):], got) {
			t.Fatalf("argv %q is not a suffix of %q", got, args)
		}
	})
}
