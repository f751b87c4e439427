package dnsbl

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseZone(t *testing.T) {
	tests := []struct {
		spec   string
		kind   Kind
		name   string
		filter string
		weight int
		points int
		err    string // part of the error; "" means valid
	}{
		{spec: "zen.spamhaus.org", name: "zen.spamhaus.org", weight: 1, points: 1},
		{spec: "Zen.Spamhaus.ORG.", name: "zen.spamhaus.org", weight: 1, points: 1},
		{spec: "zen.spamhaus.org*3", name: "zen.spamhaus.org", weight: 3, points: 3},
		{spec: "zen.spamhaus.org=127.0.0.[2..11]*3", name: "zen.spamhaus.org", filter: "127.0.0.[2..11]", weight: 3, points: 3},
		{spec: "swl.spamhaus.org*-4", name: "swl.spamhaus.org", weight: -4, points: -4},
		{spec: "list.dnswl.org=127.0.[0..255].[2;3]*-2", name: "list.dnswl.org", filter: "127.0.[0..255].[2;3]", weight: -2, points: -2},
		{spec: "bl.example=127.0.0.2;127.0.0.3", name: "bl.example", filter: "127.0.0.2;127.0.0.3", weight: 1, points: 1},
		{spec: "bl.example=[127.0.0.2]", name: "bl.example", filter: "[127.0.0.2]", weight: 1, points: 1},
		{spec: "bl.example*+2", name: "bl.example", weight: 2, points: 2},
		{spec: "bl.example*0", name: "bl.example", weight: 0, points: 0},
		{spec: "list.dnswl.org", kind: Allow, name: "list.dnswl.org", weight: 1, points: -1},
		{spec: "list.dnswl.org*3", kind: Allow, name: "list.dnswl.org", weight: 3, points: -3},
		{spec: "list.dnswl.org*-3", kind: Allow, name: "list.dnswl.org", weight: -3, points: -3},
		{spec: "under_score.example", name: "under_score.example", weight: 1, points: 1},

		{spec: "", err: "bad zone name"},
		{spec: ".", err: "bad zone name"},
		{spec: "bl..example", err: "empty label"},
		{spec: ".bl.example", err: "empty label"},
		{spec: "-bl.example", err: `starts or ends with "-"`},
		{spec: "bl-.example", err: `starts or ends with "-"`},
		{spec: "127.0.0.1", err: "all numeric"},
		{spec: "bl example", err: "bad character"},
		{spec: "bl.example/24", err: "bad character"},
		{spec: strings.Repeat("a", 64) + ".example", err: "longer than 63"},
		{spec: strings.Repeat("abcdefghi.", 19) + "example", err: "longer than 189"},
		{spec: "bl.example*", err: "bad weight"},
		{spec: "bl.example*x", err: "bad weight"},
		{spec: "bl.example*2x", err: "bad weight"},
		{spec: "bl.example*1.5", err: "bad weight"},
		{spec: "bl.example*2000000", err: "bad weight"},
		{spec: "bl.example=127.0.0.2*", err: "bad weight"},
		{spec: "bl.example=", err: "empty address pattern"},
		{spec: "bl.example=127.0.0.*", err: "bad weight"},
		{spec: "bl.example=127.0.0", err: "bad filter"},
		{spec: "bl.example=127.0.0.2.3", err: "garbage after pattern"},
		{spec: "bl.example=127.0.0.256", err: "bad filter"},
		{spec: "bl.example=1.2.[3.4]", err: "bad filter"},
		{spec: "bl.example=1.2.3.3[6..9]", err: "garbage after pattern"},
		{spec: "bl.example=127.0.0.[5..2]", err: "numeric range error"},
		{spec: "bl.example=127.0.0.[2;]", err: "bad filter"},
		{spec: "bl.example=127.0.0.[2", err: "bad filter"},
		{spec: "bl.example=[127.0.0.2", err: `missing "]"`},
		{spec: "bl.example=127.0.0.2;", err: "empty address pattern"},
		{spec: "bl.example=a.b.c.d", err: "bad filter"},
		{spec: "bl.example=127.0.0.2=127.0.0.3", err: "bad filter"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			z, err := ParseZone(tt.spec, tt.kind)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseZone(%q) = %+v, %v; want error with %q", tt.spec, z, err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "dnsbl: ") {
					t.Errorf("error %q does not start with dnsbl:", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseZone(%q): %v", tt.spec, err)
			}
			if z.Name != tt.name || z.Filter.String() != tt.filter || z.Weight != tt.weight ||
				z.Points() != tt.points || z.Kind != tt.kind {
				t.Errorf("ParseZone(%q) = name %q filter %q weight %d points %d kind %v; want %q %q %d %d %v",
					tt.spec, z.Name, z.Filter, z.Weight, z.Points(), z.Kind,
					tt.name, tt.filter, tt.weight, tt.points, tt.kind)
			}
			// String gives a spec that parses to the same entry.
			z2, err := ParseZone(z.String(), tt.kind)
			if err != nil || z2.String() != z.String() || z2.Points() != z.Points() {
				t.Errorf("String() = %q reparses as %q, %v", z.String(), z2.String(), err)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		filter string
		yes    []string
		no     []string
	}{
		{"127.0.0.2", []string{"127.0.0.2"}, []string{"127.0.0.3", "127.0.1.2", "::1"}},
		{"127.0.0.[2..11]", []string{"127.0.0.2", "127.0.0.5", "127.0.0.11"}, []string{"127.0.0.1", "127.0.0.12", "127.0.1.2"}},
		{"127.0.0.[2;4;10]", []string{"127.0.0.2", "127.0.0.4", "127.0.0.10"}, []string{"127.0.0.3", "127.0.0.11"}},
		{"127.0.[0..255].[2;4;10]", []string{"127.0.0.2", "127.0.200.4", "127.0.255.10"}, []string{"127.1.0.2", "127.0.7.3"}},
		{"127.0.[2..15].[0;2..3]", []string{"127.0.2.0", "127.0.15.3", "127.0.9.2"}, []string{"127.0.9.1", "127.0.16.0", "127.0.1.0"}},
		{"127.0.0.2;127.0.0.3", []string{"127.0.0.2", "127.0.0.3"}, []string{"127.0.0.4"}},
		{"[127.0.0.[2;3]]", []string{"127.0.0.2", "127.0.0.3"}, []string{"127.0.0.4"}},
		{"[0..255].[0..255].[0..255].[0..255]", []string{"127.0.0.2", "0.0.0.0", "255.255.255.255"}, []string{"::ffff:0:0:1"}},
		{"127.0.0.002", []string{"127.0.0.2", "::ffff:127.0.0.2"}, []string{"127.0.0.20"}},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", tt.filter, err)
		}
		for _, a := range tt.yes {
			if !f.Match(netip.MustParseAddr(a)) {
				t.Errorf("%s does not match %s", tt.filter, a)
			}
		}
		for _, a := range tt.no {
			if f.Match(netip.MustParseAddr(a)) {
				t.Errorf("%s matches %s", tt.filter, a)
			}
		}
	}
	if !(Filter{}).Match(netip.MustParseAddr("127.0.0.99")) {
		t.Error("the zero Filter does not match")
	}
}

func TestParseReply(t *testing.T) {
	zone, text, err := ParseReply("Zen.Example=Blocked: see https://zen.example/?%IP%=1")
	if err != nil || zone != "zen.example" || text != "Blocked: see https://zen.example/?%IP%=1" {
		t.Errorf("ParseReply = %q, %q, %v", zone, text, err)
	}
	for _, bad := range []string{"zen.example", "zen.example=", "zen.example=  ", "=text", "bad zone=text"} {
		if _, _, err := ParseReply(bad); err == nil {
			t.Errorf("ParseReply(%q) succeeded", bad)
		}
	}
}

func TestQueryName(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"127.0.0.2", "2.0.0.127.bl.test"},
		{"192.0.2.99", "99.2.0.192.bl.test"},
		{"::ffff:192.0.2.99", "99.2.0.192.bl.test"},
		// RFC 5782 section 2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"},
		{"::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test"},
		{"fe80::1%eth0", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.bl.test"},
	}
	for _, tt := range tests {
		if got := QueryName(netip.MustParseAddr(tt.ip), "bl.test"); got != tt.want {
			t.Errorf("QueryName(%s) = %s, want %s", tt.ip, got, tt.want)
		}
	}
	if got := QueryName(netip.Addr{}, "bl.test"); got != "" {
		t.Errorf("QueryName(invalid) = %q", got)
	}
	// The IPv6 test point is asked in nibble form, not as 127.0.0.2.
	want := "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test"
	if got := reverseName(netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0x7f, 15: 2}), "bl.test"); got != want {
		t.Errorf("IPv6 test point = %s, want %s", got, want)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Listed; see https://bl.test/?127.0.0.2", "Listed; see https://bl.test/?127.0.0.2"},
		{"evil\r\n250 OK", "evil 250 OK"},
		{"  lead\t\ttabs  and trail  ", "lead tabs and trail"},
		{"nul\x00byte", "nul?byte"},
		{"8bit \xc3\xa9t\xe9", "8bit ??t?"},
		{"\x1b[31mred", "?[31mred"},
		{"del\x7f", "del?"},
		{"\r\n\r\n", ""},
		{strings.Repeat("x", 500), strings.Repeat("x", MaxText)},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
