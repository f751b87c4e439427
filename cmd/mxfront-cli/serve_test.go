package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/internal/config"
)

// SIGHUP's work: every list file is read again into a new policy and
// dialogue, the running ones are left alone, and a bad file is an error
// (the caller keeps the old lists).
func TestReloadLists(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	allow, deny := write("allow", "192.0.2.1\n"), write("deny", "198.51.100.0/24\n")
	skip, helo := write("skip", "203.0.113.0/24\n"), write("helo", "*.dyn.example.net\n")
	o, _, ok := config.ParseChain([]string{"--log", "none", "--allow-file", allow, "--deny-file", deny, "--deny", "192.0.2.99",
		"--greylist", "--greylist-db", filepath.Join(dir, "grey.db"), "--greylist-skip-file", skip, "--helo-deny-file", helo, "prog"})
	if !ok {
		t.Fatal("arguments did not parse")
	}
	cfg, err := config.Load(o, config.Chain)
	if err != nil {
		t.Fatal(err)
	}
	write("allow", "192.0.2.1\n192.0.2.2\n")
	write("deny", "198.51.100.0/24\n198.51.100.7\n2001:db8::/32\n")
	write("skip", "")
	write("helo", "*.dyn.example.net\n*.dsl.example.net\n*.pool.example.net\n")
	p, d, err := config.ReloadLists(o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Allow.Len() != 2 || p.Deny.Len() != 4 || p.Greylist.Skip.Len() != 0 || d.HELO.Deny.Len() != 3 {
		t.Errorf("reloaded lists: allow %d, deny %d (with --deny), skip %d, helo %d",
			p.Allow.Len(), p.Deny.Len(), p.Greylist.Skip.Len(), d.HELO.Deny.Len())
	}
	if cfg.Policy.Allow.Len() != 1 || cfg.Policy.Deny.Len() != 2 || cfg.Policy.Greylist.Skip.Len() != 1 || cfg.Dialogue.HELO.Deny.Len() != 1 {
		t.Error("the reload changed the lists in use")
	}
	if p.Greylist.Policy != cfg.Policy.Greylist.Policy || p.DNS != cfg.Policy.DNS || p.Log != cfg.Policy.Log {
		t.Error("the reload did not share the greylist store, DNS client and log")
	}
	for name, bad := range map[string]string{"deny": "not-a-net\n", "skip": "not-a-net\n", "helo": "[\n"} {
		before, _ := os.ReadFile(filepath.Join(dir, name))
		write(name, bad)
		if _, _, err := config.ReloadLists(o, cfg); err == nil {
			t.Errorf("a broken %s file reloaded", name)
		}
		write(name, string(before))
	}
	os.Remove(filepath.Join(dir, "allow"))
	if _, _, err := config.ReloadLists(o, cfg); err == nil || !strings.Contains(err.Error(), "--allow-file") {
		t.Errorf("a missing allow file: %v", err)
	}
}

func TestServeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--proxy-protocol"}, "--proxy-protocol without --proxy-from"},
		{[]string{"--proxy-from", "127.0.0.1"}, "--proxy-from without --proxy-protocol"},
		{[]string{"--proxy-protocol", "--proxy-from", "not/a/net"}, "--proxy-from"},
		{[]string{"--max-conns", "-1"}, "bad --max-conns -1"},
		{[]string{"--user", "no-such-user-here"}, "--user no-such-user-here"},
		{[]string{"--group", "no-such-group-here"}, "--group no-such-group-here"},
		{[]string{"--shutdown-timeout", "soon"}, "bad duration"},
	} {
		args := append(append([]string{"mxfront", "serve", "--log", "none", "--listen", "127.0.0.1:0"}, tc.args...), "--", "/bin/true")
		var stderr bytes.Buffer
		if code := dispatch(args, &stderr); code != run.ExitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", tc.args, code, run.ExitUsage, tc.want, stderr.String())
		}
	}
}

func TestStatusLine(t *testing.T) {
	got := statusLine(serve.Stats{Conns: 5, Refusing: 3, Children: 2, Passed: 10, Refused: 7, Rejected: 1})
	if want := "5 connections, 3 refusing, 2 children; 10 passed, 7 refused, 1 rejected"; got != want {
		t.Errorf("got %q", got)
	}
}
