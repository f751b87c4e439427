package frontend

import (
	"net/netip"
	"strings"
	"testing"
)

func TestHELOBogus(t *testing.T) {
	pats := &HELOPatterns{}
	err := pats.read(strings.NewReader("# dynamic pools\n*.dyn.example.net   dynamic pool\n\n*[0-9]-[0-9]*-[0-9]*.*\nMAIL.EXAMPLE.COM\n"), "deny")
	if err != nil {
		t.Fatal(err)
	}
	local4 := netip.MustParseAddrPort("192.0.2.25:25")
	local6 := netip.MustParseAddrPort("[2001:db8::25]:25")
	h := HELOCheck{Mode: HELOLog, Deny: pats}
	tests := []struct {
		name  string
		local netip.AddrPort
		want  string // "" means fine; else a piece of the reason
	}{
		{"mail.example.org", local4, ""},
		{"Mail.Example.ORG.", local4, ""},   // case and a trailing dot
		{"my_host.example.org", local4, ""}, // underscores are tolerated
		{"xn--bcher-kva.example", local4, ""},
		{"[198.51.100.7]", local4, ""},
		{"[IPv6:2001:db8::7]", local6, ""},
		{"[ipv6:2001:db8::7]", local6, ""},
		{"198.51.100.7", local4, "is a bare IP"},
		{"2001:db8::7", local6, "is a bare IP"},
		{"192.0.2.25", local4, "our own address"},
		{"[192.0.2.25]", local4, "our own address"},
		{"[IPv6:2001:db8::25]", local6, "our own address"},
		{"[2001:db8::7]", local6, "malformed address literal"},
		{"[IPv6:1.2.3.4]", local4, "malformed address literal"},
		{"[198.51.100.7", local4, "malformed address literal"},
		{"[not.an.ip]", local4, "malformed address literal"},
		{"localhost", local4, "localhost"},
		{"LOCALHOST", local4, "localhost"},
		{"localhost.localdomain", local4, "localhost"},
		{"box.localhost", local4, "localhost"},
		{"mx.example.test", local4, "our own host name"},
		{"MX.example.test.", local4, "our own host name"},
		{"desktop", local4, "no dot"},
		{"-bad.example.org", local4, "not a valid host name"},
		{"bad-.example.org", local4, "not a valid host name"},
		{"a..example.org", local4, "not a valid host name"},
		{"spam!.example.org", local4, "not a valid host name"},
		{"." + strings.Repeat("a", 10), local4, "not a valid host name"},
		{strings.Repeat("a", 64) + ".example.org", local4, "not a valid host name"},
		{strings.Repeat("abcdefgh.", 30) + "org", local4, "not a valid host name"},
		{"host7.dyn.example.net", local4, "matches *.dyn.example.net (deny:2): dynamic pool"},
		{"HOST7.DYN.EXAMPLE.NET", local4, "matches *.dyn.example.net"},
		{"dyn.example.net", local4, ""}, // the pattern wants a label before
		{"host-1-2-3.isp.example", local4, "matches *[0-9]-[0-9]*-[0-9]*.* (deny:4)"},
		{"mail.example.com", local4, "matches mail.example.com (deny:5)"},
	}
	for _, tt := range tests {
		got := h.Bogus(tt.name, "mx.example.test", tt.local)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("Bogus(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := (HELOCheck{Mode: HELOOff}).Bogus("localhost", "mx", local4); got != "" {
		t.Errorf("--helo-check off judged a name: %q", got)
	}
}

func TestHELOPatternsBad(t *testing.T) {
	for _, in := range []string{"[a-\n", "ok.example\nbad/one\n", "x[\n"} {
		if err := (&HELOPatterns{}).read(strings.NewReader(in), "f"); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestParseHELOMode(t *testing.T) {
	for s, want := range map[string]HELOMode{"off": HELOOff, "log": HELOLog, "refuse": HELORefuse} {
		if m, err := ParseHELOMode(s); err != nil || m != want || m.String() != s {
			t.Errorf("%s: %v, %v", s, m, err)
		}
	}
	if _, err := ParseHELOMode("yes"); err == nil {
		t.Error("yes: no error")
	}
}

func FuzzHELOBogus(f *testing.F) {
	for _, s := range []string{"mail.example.org", "[192.0.2.1]", "[IPv6:::1]", "localhost", "a..b", "1.2.3.4", "x_y.z."} {
		f.Add(s)
	}
	h := HELOCheck{Mode: HELORefuse}
	local := netip.MustParseAddrPort("192.0.2.25:25")
	f.Fuzz(func(t *testing.T, name string) {
		why := h.Bogus(name, "mx.example.test", local)
		// A name that passes is a domain or an address literal.
		if why == "" && !strings.HasPrefix(name, "[") && (badDomain(name) != "" || !strings.Contains(name, ".")) {
			t.Fatalf("%q passed", name)
		}
		if why != "" {
			v := heloRefusal(Verdict{}, name, why, why)
			if v.Reply.Code != 554 || strings.ContainsAny(v.Reply.Text, "\r\n") {
				t.Fatalf("%q: refusal %+v", name, v)
			}
		}
	})
}
