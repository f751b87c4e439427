package frontend

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// --observe and the --*-action log flags: the client passes, the refusal
// it would have had is kept, nothing is written to the greylist.
func TestObserve(t *testing.T) {
	srv := testLists(t)
	listed := Client{Remote: netip.MustParseAddrPort("192.0.2.1:25")} // on bl1.test
	clean := Client{Remote: netip.MustParseAddrPort("198.51.100.7:25")}
	for _, tc := range []struct {
		name                     string
		observe, dnsLog, greyLog bool
		deny                     bool
		client                   Client
		action                   Action
		by, observedBy           Check // observedBy ByNone: nothing observed
		recorded                 int   // greylist records after the decision
	}{
		{name: "observe: deny list", observe: true, deny: true, client: listed, action: Pass, observedBy: ByDenyList},
		{name: "observe: DNS list", observe: true, client: listed, action: Pass, observedBy: ByDNSLists},
		{name: "observe: greylist", observe: true, client: clean, action: Pass, observedBy: ByGreylist},
		{name: "enforced: DNS list", client: listed, action: Refuse, by: ByDNSLists},
		{name: "enforced: greylist", client: clean, action: Refuse, by: ByGreylist, recorded: 1},
		{name: "DNS logged, greylist enforced", dnsLog: true, client: listed, action: Refuse, by: ByGreylist, observedBy: ByDNSLists, recorded: 1},
		{name: "greylist logged", greyLog: true, client: clean, action: Pass, observedBy: ByGreylist},
		{name: "greylist logged, DNS enforced", greyLog: true, client: listed, action: Refuse, by: ByDNSLists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := greylist.NewMemory()
			gp, err := greylist.NewPolicy(store, greylist.Config{})
			if err != nil {
				t.Fatal(err)
			}
			p := &Policy{Observe: tc.observe, Log: &logline.Logger{},
				DNS:      listsFor(t, srv, "bl1.test"),
				Greylist: &Greylisting{Policy: gp, LogOnly: tc.greyLog}}
			p.DNS.LogOnly = tc.dnsLog
			if tc.deny {
				p.Deny = list(t, "192.0.2.0/24")
			}
			v := p.Decide(context.Background(), tc.client)
			if v.Action != tc.action || (tc.action == Refuse && v.By != tc.by) {
				t.Fatalf("%v by %v, want %v by %v (%q)", v.Action, v.By, tc.action, tc.by, v.Reasons)
			}
			switch {
			case tc.observedBy == ByNone && v.Observed != nil:
				t.Errorf("observed %v", v.Observed.By)
			case tc.observedBy != ByNone && (v.Observed == nil || v.Observed.By != tc.observedBy || v.Observed.Action != Refuse):
				t.Errorf("observed %+v, want a refusal by %v", v.Observed, tc.observedBy)
			case tc.observedBy != ByNone && !slices.ContainsFunc(v.Reasons, func(r string) bool { return strings.HasSuffix(r, "(not enforced)") }):
				t.Errorf("reasons %q do not say what was not enforced", v.Reasons)
			}
			if st, _ := store.Stats(context.Background()); st.Records != tc.recorded {
				t.Errorf("%d greylist records, want %d", st.Records, tc.recorded)
			}
			if tc.action == Pass && tc.observedBy != ByNone {
				env := strings.Join(Environ(nil, tc.client.Remote, netip.AddrPort{}, "mx", v), "\n")
				if !strings.Contains(env, "MXFRONT_VERDICT=pass") || !strings.Contains(env, "MXFRONT_WOULD_REFUSE="+v.Observed.Reply.String()) {
					t.Errorf("PROGRAM's environment:\n%s", env)
				}
			}
		})
	}
}

// Observed, a client's line is the line its refusal would have had, with
// verdict=would-refuse; an early talker under --early-talker-action log
// passes the same way.
func TestObservedLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		l      Life
		conn   fakeConn
		client Client
		want   []string
	}{
		{"deny list observed", Life{Policy: &Policy{Observe: true, Deny: list(t, "192.0.2.0/24")}},
			fakeConn{}, Client{Remote: netip.MustParseAddrPort("192.0.2.7:4000")},
			[]string{"msg=refused ", "verdict=would-refuse", `reply="554 5.7.1 Client host [192.0.2.7] is on our local deny list"`, "(not enforced)"}},
		{"early talker logged", Life{Policy: &Policy{}, Dialogue: DialogueConfig{Hostname: "mx", GreetDelay: time.Hour, EarlyTalkerLogOnly: true}},
			fakeConn{talk: Early}, Client{Remote: netip.MustParseAddrPort("198.51.100.7:4000")},
			[]string{"msg=refused ", "verdict=would-refuse", `reply="554 5.5.1 Error: protocol violation: you spoke before the greeting ended"`, "early talker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			tc.l.Log = logline.WriterLogger(&log)
			h := &fakeHandover{}
			c := tc.conn
			if err := tc.l.Run(context.Background(), &c, tc.client, h, time.Now()); err != nil || h.passed == nil {
				t.Fatalf("not passed: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(log.String(), w) {
					t.Errorf("line lacks %q:\n%s", w, log.String())
				}
			}
			if strings.Count(log.String(), "\n") != 1 {
				t.Errorf("want one line:\n%s", log.String())
			}
		})
	}
}

// listsFor is DNSLists asking zones (block lists) on srv, refusing at 1.
func listsFor(t *testing.T, srv *listServer, zones ...string) *DNSLists {
	t.Helper()
	c, err := dnsbl.New(dnsbl.Config{Zones: zonesOf(t, zones, nil), Servers: []string{srv.addr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &DNSLists{Checker: c, Threshold: 1, AllowThreshold: -1}
}
