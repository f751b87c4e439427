package relay

import (
	"bufio"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/recipients"
)

func rcptRules(t *testing.T, list string, local ...string) *Rules {
	t.Helper()
	l, err := recipients.ParseList(strings.NewReader(list), "rcpts")
	if err != nil {
		t.Fatal(err)
	}
	r := &Rules{Recipients: &recipients.Set{Lists: []*recipients.List{l}}}
	if len(local) > 0 {
		r.LocalDomains = recipients.ParseDomains(local)
	}
	return r
}

const msg = "Subject: hi\r\n\r\nbody\r\n.\r\n"

// A whole pipelined session: the relay greets, PROGRAM's greeting is
// dropped, every reply comes in order, CHUNKING leaves the EHLO reply,
// and the message reaches the server as sent.
func TestSessionPipelined(t *testing.T) {
	fake := &fakeServer{}
	res := run{rules: rcptRules(t, "alice@example.test\n"), cfg: Config{Rcpt: Refuse}, fake: fake,
		in: "EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" +
			msg + "QUIT\r\n"}.go_(t)
	if res.err != nil {
		t.Fatal(res.err)
	}
	want := []string{"220", "250", "250", "250", "550", "354", "250", "221"}
	if got := codes(res.out); !slices.Equal(got, want) {
		t.Fatalf("replies %v, want %v:\n%s", got, want, res.out)
	}
	if !strings.HasPrefix(res.out, "220 mx.example.test ESMTP\r\n250-fake\r\n") || strings.Contains(res.out, "CHUNKING") || strings.Contains(res.out, "220 fake") {
		t.Errorf("greeting or EHLO reply:\n%s", res.out)
	}
	if !strings.Contains(res.out, "550 5.1.1 Recipient <bob@example.test> rejected: no such user here\r\n") {
		t.Errorf("no 550 for bob:\n%s", res.out)
	}
	heard := fake.heard()
	if strings.Contains(heard, "bob@") {
		t.Errorf("the server heard the refused recipient:\n%s", heard)
	}
	if !strings.Contains(heard, "RCPT TO:<alice@example.test>\r\n") || len(fake.messages) != 1 || fake.messages[0] != msg {
		t.Errorf("the server heard %q and got %q", heard, fake.messages)
	}
	for _, w := range []string{`msg=transaction`, `helo=client.example.org`, `mail=s@example.org`,
		`rcpt="alice@example.test accepted; bob@example.test refused 550 5.1.1`, `accepted=1 refused=1`, `reply="250 2.0.0 queued as FAKE"`, `end=delivered`,
		`msg="relay ended"`, `messages=1`, `end=quit`} {
		if !strings.Contains(res.log, w) {
			t.Errorf("log lacks %s:\n%s", w, res.log)
		}
	}
	env := strings.Join(fake.env, "\n")
	for _, w := range []string{"MXFRONT_INSPECTED=1", "MXFRONT_HELO=client.example.org", "TCPREMOTEIP=192.0.2.7", "MXFRONT_VERDICT=pass"} {
		if !strings.Contains(env, w) {
			t.Errorf("PROGRAM's environment lacks %s:\n%s", w, env)
		}
	}
}

// Several messages in one session, RSET between, and the bare-bones
// commands answered before PROGRAM runs (it never starts for a client
// that only says QUIT).
func TestSessionSeveralMessages(t *testing.T) {
	fake := &fakeServer{}
	in := "EHLO c.example.org\r\n"
	for i := 0; i < 3; i++ {
		in += "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" + msg
	}
	in += "MAIL FROM:<s@example.org>\r\nRSET\r\nQUIT\r\n"
	res := run{fake: fake, in: in}.go_(t)
	if len(fake.messages) != 3 || fake.starts != 1 {
		t.Fatalf("%d messages, %d starts:\n%s", len(fake.messages), fake.starts, res.out)
	}
	if n := strings.Count(res.log, "end=delivered"); n != 3 || !strings.Contains(res.log, "end=rset") {
		t.Errorf("log:\n%s", res.log)
	}
	quiet := &fakeServer{}
	res = run{fake: quiet, in: "NOOP\r\nRSET\r\nQUIT\r\n"}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "250", "221"}) || quiet.starts != 0 {
		t.Errorf("%v, %d starts:\n%s", got, quiet.starts, res.out)
	}
}

func TestRelayAttempt(t *testing.T) {
	rules := rcptRules(t, "@example.test\n", "example.test")
	in := "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<victim@elsewhere.example>\r\nQUIT\r\n"
	fake := &fakeServer{}
	res := run{rules: rules, cfg: Config{Rcpt: Refuse}, fake: fake, in: in}.go_(t)
	if !strings.Contains(res.out, "553 5.7.1 Recipient <victim@elsewhere.example> rejected: relay not permitted") || strings.Contains(fake.heard(), "victim") {
		t.Fatalf("%s\nheard:\n%s", res.out, fake.heard())
	}
	// RELAYCLIENT may relay; so may a client the server let AUTH.
	trusted := frontend.Verdict{Action: frontend.Trusted, By: frontend.ByRelayClient}
	fake = &fakeServer{}
	res = run{rules: rules, cfg: Config{Rcpt: Refuse}, verdict: trusted, fake: fake, in: in}.go_(t)
	if !strings.Contains(fake.heard(), "victim") {
		t.Fatalf("a trusted client could not relay:\n%s", res.out)
	}
	fake = &fakeServer{}
	res = run{rules: rules, cfg: Config{Rcpt: Refuse}, fake: fake,
		in: "EHLO c.example.org\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<victim@elsewhere.example>\r\nQUIT\r\n"}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "334", "235", "250", "250", "221"}) || !strings.Contains(fake.heard(), "victim") {
		t.Fatalf("after AUTH: %v\n%s", got, res.out)
	}
	if strings.Contains(res.log, "AGFsaWNl") {
		t.Errorf("the AUTH answer reached the log:\n%s", res.log)
	}
}

func TestRecipientLimits(t *testing.T) {
	in := "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\n"
	for i := 0; i < 4; i++ {
		in += "RCPT TO:<a" + string(rune('0'+i)) + "@example.test>\r\n"
	}
	in += "QUIT\r\n"
	res := run{cfg: Config{Dialogue: frontend.DialogueConfig{MaxRecipients: 2}}, in: in}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "250", "250", "250", "452", "452", "221"}) {
		t.Fatalf("%v\n%s", got, res.out)
	}
	// The third bad recipient ends the session.
	in = "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<ok@example.test>\r\n" +
		"RCPT TO:<b1@example.test>\r\nRCPT TO:<b2@example.test>\r\nRCPT TO:<b3@example.test>\r\nRCPT TO:<b4@example.test>\r\nQUIT\r\n"
	fake := &fakeServer{}
	res = run{rules: rcptRules(t, "ok@example.test\n"), cfg: Config{Rcpt: Refuse, MaxBadRcpts: 3, BadRcptDelay: time.Millisecond}, fake: fake, in: in}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "250", "250", "550", "550", "550", "421"}) {
		t.Fatalf("%v\n%s", got, res.out)
	}
	if !strings.HasSuffix(res.out, "421 4.7.0 mx.example.test Error: too many bad recipients\r\n") || strings.Contains(fake.heard(), "b4") {
		t.Errorf("%s\nheard %s", res.out, fake.heard())
	}
	if !strings.Contains(res.log, "end=bad-rcpts") {
		t.Errorf("log:\n%s", res.log)
	}
}

// A bogus HELO under --helo-check refuse: the HELO reaches the server,
// every RCPT gets 554 from the relay. Logged only for a trusted client.
func TestBogusHELO(t *testing.T) {
	cfg := Config{Dialogue: frontend.DialogueConfig{HELO: frontend.HELOCheck{Mode: frontend.HELORefuse}}}
	in := "HELO localhost\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nQUIT\r\n"
	fake := &fakeServer{}
	res := run{cfg: cfg, fake: fake, in: in}.go_(t)
	if !strings.Contains(res.out, "554 5.7.1 HELO/EHLO name localhost rejected: it is localhost\r\n") || strings.Contains(fake.heard(), "RCPT") {
		t.Fatalf("%s\nheard %s", res.out, fake.heard())
	}
	if !strings.Contains(res.log, `helo_bogus="is localhost"`) {
		t.Errorf("log:\n%s", res.log)
	}
	fake = &fakeServer{}
	res = run{cfg: cfg, verdict: frontend.Verdict{Action: frontend.Trusted, By: frontend.ByAllowList}, fake: fake, in: in}.go_(t)
	if !strings.Contains(fake.heard(), "RCPT") || !strings.Contains(res.log, `helo_bogus="is localhost"`) {
		t.Errorf("trusted: %s\n%s", res.out, res.log)
	}
}

// domains is a MailDomains from a table.
type domains map[string]dnsbl.MailDomain

func (d domains) MailDomain(_ context.Context, name string) dnsbl.MailDomain {
	md, ok := d[name]
	if !ok {
		return dnsbl.MailDomain{Domain: name, Exists: true}
	}
	md.Domain = name
	return md
}

func TestSenderCheck(t *testing.T) {
	dom := domains{
		"nx.example":   {NXDomain: true},
		"null.example": {NullMX: true},
		"none.example": {},
		"fail.example": {Err: &dnsbl.Error{Zone: "fail.example", Cause: dnsbl.Timeout, Detail: "timeout"}},
	}
	for _, tc := range []struct {
		from string
		temp bool
		want string
	}{
		{"<s@ok.example>", false, "250 2.1.0 Ok"},
		{"<>", false, "250 2.1.0 Ok"},
		{"<s@[192.0.2.1]>", false, "250 2.1.0 Ok"},
		{"<s@nx.example>", false, "550 5.1.8 Sender address <s@nx.example> rejected: domain nx.example does not exist"},
		{"<s@null.example>", false, "550 5.7.27 Sender address <s@null.example> rejected: null.example accepts no mail (null MX)"},
		{"<s@none.example>", false, "550 5.1.8 Sender address <s@none.example> rejected: domain none.example has no MX or address record"},
		{"<s@fail.example>", false, "250 2.1.0 Ok"},
		{"<s@fail.example>", true, "451 4.4.3 Sender domain fail.example: DNS lookup failed, try again later"},
		{"<s..x@ok.example>", false, "553 5.1.7 Sender address <s..x@ok.example> rejected: it has a malformed local part"},
		{"<nodomain>", false, "553 5.1.7 Sender address <nodomain> rejected: it has no domain"},
		{"<s@bad_-.example.>", false, "553 5.1.7"},
		{"<\"quoted > x\"@ok.example>", false, "250 2.1.0 Ok"},
		{"<@route.example:s@ok.example>", false, "250 2.1.0 Ok"},
	} {
		fake := &fakeServer{}
		res := run{cfg: Config{Sender: Refuse, Domains: dom, DNSFailTemp: tc.temp}, fake: fake,
			in: "EHLO c.example.org\r\nMAIL FROM:" + tc.from + "\r\nQUIT\r\n"}.go_(t)
		lines := strings.Split(res.out, "\r\n")
		var got string
		for _, l := range lines {
			if strings.HasPrefix(l, "250 2.1.0") || strings.HasPrefix(l, "55") || strings.HasPrefix(l, "45") {
				got = l
			}
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("MAIL FROM:%s: %q, want %q\n%s", tc.from, got, tc.want, res.out)
		}
		if tc.want[0] != '2' && strings.Contains(fake.heard(), "MAIL") {
			t.Errorf("MAIL FROM:%s reached the server", tc.from)
		}
	}
	// log mode: noted, passed.
	res := run{cfg: Config{Sender: Log, Domains: dom}, in: "EHLO c.example.org\r\nMAIL FROM:<s@nx.example>\r\nRCPT TO:<a@example.test>\r\nQUIT\r\n"}.go_(t)
	if !strings.Contains(res.out, "250 2.1.0 Ok") || !strings.Contains(res.log, `mail_note="sender domain does not exist"`) {
		t.Errorf("log mode:\n%s\n%s", res.out, res.log)
	}
}

// The message passes as sent: dot-stuffed lines, bare LFs, NULs, 8-bit
// octets, a lone CR; the end is found across any split of the reads.
func TestDataExact(t *testing.T) {
	body := "Subject: x\r\n\r\n..stuffed\r\nbare\nlf\n\x00nul\xff\xfe8bit\rcr\r\n.\r.x\r\n..\r\n" + strings.Repeat("y", 70000) + "\r\n.\r\n"
	fake := &fakeServer{}
	res := run{fake: fake, in: "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" + body + "QUIT\r\n"}.go_(t)
	if len(fake.messages) != 1 || fake.messages[0] != body {
		t.Fatalf("the server got %d messages; %.200q", len(fake.messages), fake.messages)
	}
	if !strings.Contains(res.out, "250 2.0.0 queued as FAKE\r\n221") {
		t.Errorf("%s", res.out)
	}
}

func TestDataScannerSplits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int // octets through the end; -1: no end
		bare bool
	}{
		{".\r\n", 3, false},
		{"a\r\n.\r\n", 6, false},
		{"a\r\n..\r\n.\r\nrest", 10, false},
		{"a\n.\r\n", 2, true},
		{"a\r\n.\nx", 3, true},
		{"a\n.\n", 2, true},
		{"a\r\n.x\r\n", -1, false},
		{"a\r.\r\n", -1, false},
	} {
		// Every split into two reads gives the same answer.
		for cut := 0; cut <= len(tc.in); cut++ {
			var sc dataScanner
			buf := tc.in[:cut]
			fed, total := cut, 0
			var end, bare bool
			for {
				n, e, b := sc.scan([]byte(buf))
				total += n
				buf = buf[n:]
				if e || b {
					end, bare = e, b
					break
				}
				if fed == len(tc.in) {
					break
				}
				buf += tc.in[fed:]
				fed = len(tc.in)
			}
			switch {
			case tc.bare && (!bare || total != tc.n):
				t.Errorf("%q cut at %d: bare=%v at %d, want bare at %d", tc.in, cut, bare, total, tc.n)
			case !tc.bare && tc.n >= 0 && (!end || total != tc.n):
				t.Errorf("%q cut at %d: end=%v at %d, want end at %d", tc.in, cut, end, total, tc.n)
			case tc.n < 0 && (end || bare):
				t.Errorf("%q cut at %d: an end found", tc.in, cut)
			}
		}
	}
}

// A dot line next to a bare LF (SMTP smuggling's trick) never reaches
// the server: the message is refused, and nothing after it is relayed.
func TestBareLFDot(t *testing.T) {
	fake := &fakeServer{}
	res := run{fake: fake, in: "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" +
		"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<forged@example.org>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n"}.go_(t)
	if !strings.Contains(res.out, "554 5.6.0 ") || !strings.HasSuffix(res.out, "421 5.5.1 mx.example.test closing\r\n") {
		t.Fatalf("%s", res.out)
	}
	if h := fake.heard(); strings.Contains(h, "forged") || strings.Contains(h, "victim") || len(fake.messages) != 0 {
		t.Fatalf("the server heard %q, took %q", h, fake.messages)
	}
}

// A server that dies mid-session, or greets with 554: the client hears
// it, and the session ends.
func TestServerFails(t *testing.T) {
	res := run{fake: &fakeServer{dieAt: "RCPT"}, in: "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n"}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.3.0 mx.example.test Service temporarily unavailable\r\n") || !strings.Contains(res.log, "end=server-gone") {
		t.Fatalf("%s\n%s", res.out, res.log)
	}
	res = run{fake: &fakeServer{greeting: "554 5.3.2 fake: no service\r\n"}, in: "EHLO c.example.org\r\nQUIT\r\n"}.go_(t)
	if res.out != "220 mx.example.test ESMTP\r\n554 5.3.2 fake: no service\r\n" {
		t.Fatalf("%q", res.out)
	}
	res = run{fake: &fakeServer{greeting: "garbage\r\n"}, in: "EHLO c.example.org\r\nQUIT\r\n"}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.3.0 mx.example.test Service temporarily unavailable\r\n") {
		t.Fatalf("%q", res.out)
	}
	huge := &fakeServer{ehlo: "250-" + strings.Repeat("x", 100000) + "\r\n250 ok\r\n"}
	res = run{fake: huge, in: "EHLO c.example.org\r\nQUIT\r\n"}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.3.0 mx.example.test Service temporarily unavailable\r\n") {
		t.Fatalf("%.300q", res.out)
	}
}

// PROGRAM that cannot start: Session says so (the life answers 421).
func TestStartFails(t *testing.T) {
	r := New(Config{Dialogue: frontend.DialogueConfig{Hostname: "mx.example.test"}}, nil)
	client, relayEnd := socketpair(t)
	defer client.Close()
	prog := Program{Start: func(*os.File, []string) (Started, error) { return nil, errors.New("no such file") }}
	go func() { _, _ = client.WriteString("EHLO c.example.org\r\n") }()
	p := &frontend.Passed{Verdict: frontend.Verdict{Action: frontend.Pass}}
	err := r.Session(context.Background(), relayEnd, p, prog)
	if err == nil || !errors.Is(err, errStart) {
		t.Fatalf("err %v", err)
	}
}

func TestClientBounds(t *testing.T) {
	long := strings.Repeat("x", 5000)
	res := run{cfg: Config{Dialogue: frontend.DialogueConfig{MaxErrors: 3}}, in: "EHLO c.example.org\r\nNOOP " + long + "\r\nA\x00B\r\nMAIL FROM:bad\r\nQUIT\r\n"}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "500", "500", "501", "421"}) {
		t.Fatalf("%v\n%s", got, res.out)
	}
	res = run{in: "EHLO c.example.org\r\nBDAT 10 LAST\r\n0123456789"}.go_(t)
	if !strings.HasSuffix(res.out, "421 5.5.1 mx.example.test Error: BDAT was not offered\r\n") {
		t.Fatalf("%s", res.out)
	}
	res = run{in: "GET / HTTP/1.0\r\n"}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.7.0 mx.example.test Error: this is an SMTP server\r\n") {
		t.Fatalf("%s", res.out)
	}
	var many strings.Builder
	many.WriteString("EHLO c.example.org\r\n")
	for i := 0; i < 200; i++ {
		many.WriteString("NOOP\r\n")
	}
	res = run{cfg: Config{Dialogue: frontend.DialogueConfig{MaxCommands: 20, MaxRecipients: 5}}, in: many.String()}.go_(t)
	if n := strings.Count(res.out, "250 2.0.0 Ok"); n != 24 || !strings.HasSuffix(res.out, "Error: too many commands\r\n") {
		t.Fatalf("%d NOOPs answered:\n%s", n, res.out)
	}
}

// A client that goes quiet gets 421 at the command timeout; a shutdown
// ends a session with 421 too.
func TestTimeoutAndShutdown(t *testing.T) {
	res := run{cfg: Config{Dialogue: frontend.DialogueConfig{CommandTimeout: 50 * time.Millisecond}}, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\n")
	}}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.4.2 mx.example.test Error: timeout exceeded\r\n") {
		t.Fatalf("%q", res.out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res = run{ctx: ctx, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "250 ") {
				break
			}
		}
		cancel()
	}}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.3.2 mx.example.test Service shutting down, try again later\r\n") || !strings.Contains(res.log, "end=shutdown") {
		t.Fatalf("%q\n%s", res.out, res.log)
	}
}

// Without a certificate, STARTTLS goes to the server, and from its 220
// on the relay copies octets both ways.
func TestSTARTTLSPassthrough(t *testing.T) {
	res := run{fake: &fakeServer{tlsEcho: true}, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\nSTARTTLS\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "220 2.0.0") {
				break
			}
		}
		_, _ = c.WriteString("\x16\x03\x01opaque octets\r\n")
		got := make([]byte, 20)
		if _, err := r.Read(got); err != nil || !strings.HasPrefix(string(got), "\x16\x03\x01opaque") {
			t.Fatalf("echo: %q %v", got, err)
		}
		c.Close()
	}}.go_(t)
	if !strings.Contains(res.log, "end=tls-passthrough") || !strings.Contains(res.log, "passed through") {
		t.Fatalf("%s", res.log)
	}
}

// Commands are judged as the most lenient server would read them: white
// space before the verb or a tab after it does not slip a RCPT past the
// checks, and a bare CR (which some servers take for a line's end) is
// refused.
func TestLenientCommandForms(t *testing.T) {
	fake := &fakeServer{}
	res := run{rules: rcptRules(t, "alice@example.test\n"), cfg: Config{Rcpt: Refuse}, fake: fake,
		in: "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\n  RCPT TO:<nobody@example.test>\r\nRCPT\tTO:<nobody@example.test>\r\n" +
			"NOOP\rRCPT TO:<nobody@example.test>\r\nrcpt to:<alice@example.test>\r\nQUIT\r\n"}.go_(t)
	if got := codes(res.out); !slices.Equal(got, []string{"220", "250", "250", "550", "550", "500", "250", "221"}) {
		t.Fatalf("%v\n%s", got, res.out)
	}
	if strings.Contains(fake.heard(), "nobody") {
		t.Fatalf("the server heard %q", fake.heard())
	}
}
