package filter

import (
	"context"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/internal/recipients"
)

// The local-addresses check: a From, Sender or Reply-To in a local domain
// must be a mailbox of the site; other domains are not its business; a
// source that fails is unsure (the message passes, and it is said).
func TestLocalHeaderAddresses(t *testing.T) {
	list, err := recipients.ParseList(strings.NewReader("alice@example.test\n"), "rcpts")
	if err != nil {
		t.Fatal(err)
	}
	la := &LocalAddresses{Domains: recipients.ParseDomains([]string{"example.test"}),
		Recipients: &recipients.Set{Lists: []*recipients.List{list}}}
	msg := func(from, extra string) string {
		return "From: " + from + "\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n" + extra + "Subject: x\n\nbody\n"
	}
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"valid local", msg("Alice <ALICE@example.test>", ""), "250 2.0.0"},
		{"forged local", msg("Ghost <ghost@example.test>", ""), "554 5.7.1 header address ghost@example.test is not a mailbox of this site"},
		{"forged in Reply-To", msg("alice@example.test", "Reply-To: nobody@Example.Test.\n"), "554 5.7.1"},
		{"another domain", msg("someone@example.org", ""), "250 2.0.0"},
	} {
		cfg := DefaultConfig()
		cfg.LocalAddresses = la
		rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, tc.msg)})
		if !strings.HasPrefix(rep.Verdict.Reply(), tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, rep.Verdict.Reply(), tc.want)
		}
	}
	// Off without the flag.
	cfg := DefaultConfig()
	if rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, msg("ghost@example.test", ""))}); !strings.HasPrefix(rep.Verdict.Reply(), "250") {
		t.Errorf("without --local-header-addresses: %q", rep.Verdict.Reply())
	}
	cfg.LocalAddresses = &LocalAddresses{Domains: la.Domains, Recipients: &recipients.Set{CDBs: []recipients.ValidRcptTo{{Path: "/nonexistent.cdb"}}}}
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, msg("ghost@example.test", ""))})
	if !strings.HasPrefix(rep.Verdict.Reply(), "250") {
		t.Errorf("an unreadable cdb: %q", rep.Verdict.Reply())
	}
	var res string
	for _, c := range rep.Checks {
		if c.Name == CheckLocalAddresses {
			res = c.Result
		}
	}
	if !strings.Contains(res, "nonexistent.cdb") {
		t.Errorf("the unsure check's result: %q (%+v)", res, rep.Checks)
	}
}
