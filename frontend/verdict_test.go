package frontend

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/sanitize"
	"golang.org/x/sys/unix"
)

func list(t *testing.T, nets ...string) *NetList {
	t.Helper()
	l := &NetList{}
	for _, n := range nets {
		if err := l.Add(n, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestDecidePrecedence(t *testing.T) {
	allow := list(t, "192.0.2.7", "2001:db8::/32")
	deny := list(t, "192.0.2.0/24", "2001:db8::/32", "198.51.100.0/24")
	tests := []struct {
		name        string
		ip          string
		relay       bool
		rbl         string
		hasRBL      bool
		temp        bool
		wantAction  Action
		wantCode    int
		wantEnh     string
		wantText    string
		wantReasons int
	}{
		{name: "nothing matches", ip: "203.0.113.5", wantAction: Pass},
		{name: "denied", ip: "198.51.100.9", wantAction: Refuse, wantCode: 554, wantEnh: "5.7.1",
			wantText: "Client host [198.51.100.9] is on our local deny list", wantReasons: 1},
		{name: "denied, --temp", ip: "198.51.100.9", temp: true, wantAction: Refuse, wantCode: 451, wantEnh: "4.7.1", wantReasons: 1},
		{name: "allow beats deny", ip: "192.0.2.7", wantAction: Trusted, wantReasons: 1},
		{name: "allow beats deny, IPv6", ip: "2001:db8::25", wantAction: Trusted, wantReasons: 1},
		{name: "mapped IPv4 is IPv4", ip: "::ffff:198.51.100.9", wantAction: Refuse, wantCode: 554, wantEnh: "5.7.1", wantReasons: 1},
		{name: "deny neighbour of allowed", ip: "192.0.2.8", wantAction: Refuse, wantCode: 554, wantEnh: "5.7.1", wantReasons: 1},
		{name: "RELAYCLIENT beats deny", ip: "198.51.100.9", relay: true, wantAction: Trusted, wantReasons: 1},
		{name: "RBLSMTPD empty trusts", ip: "198.51.100.9", hasRBL: true, wantAction: Trusted, wantReasons: 1},
		{name: "RBLSMTPD text is 451", ip: "203.0.113.5", hasRBL: true, rbl: "listed at example", wantAction: Refuse,
			wantCode: 451, wantEnh: "4.7.1", wantText: "listed at example", wantReasons: 1},
		{name: "RBLSMTPD dash is 553", ip: "203.0.113.5", hasRBL: true, rbl: "-go away", wantAction: Refuse,
			wantCode: 553, wantEnh: "5.7.1", wantText: "go away", wantReasons: 1},
		{name: "RBLSMTPD beats deny text", ip: "198.51.100.9", hasRBL: true, rbl: "-from env", wantAction: Refuse,
			wantCode: 553, wantEnh: "5.7.1", wantText: "from env", wantReasons: 1},
		{name: "allow beats RBLSMTPD", ip: "192.0.2.7", hasRBL: true, rbl: "-x", wantAction: Trusted, wantReasons: 1},
		{name: "RBLSMTPD text sanitised", ip: "203.0.113.5", hasRBL: true, rbl: "-bad\r\n250 ok", wantAction: Refuse,
			wantCode: 553, wantEnh: "5.7.1", wantText: "bad??250 ok", wantReasons: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Allow: allow, Deny: deny, Temp: tt.temp}
			c := Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(tt.ip), 25), RelayClient: tt.relay,
				RBLSMTPD: tt.rbl, HasRBLSMTPD: tt.hasRBL}
			v := p.Decide(context.Background(), c)
			if v.Action != tt.wantAction || v.Reply.Code != tt.wantCode || v.Reply.Status.String() != tt.wantEnh ||
				(tt.wantText != "" && v.Reply.Text != tt.wantText) || len(v.Reasons) != tt.wantReasons {
				t.Errorf("Decide(%s) = %+v; want action %v code %d %s text %q, %d reasons",
					tt.ip, v, tt.wantAction, tt.wantCode, tt.wantEnh, tt.wantText, tt.wantReasons)
			}
		})
	}
}

func TestZeroPolicyPasses(t *testing.T) {
	var p Policy
	v := p.Decide(context.Background(), Client{Remote: netip.MustParseAddrPort("192.0.2.1:25")})
	if v.Action != Pass {
		t.Fatalf("zero policy: %+v", v)
	}
}

func TestSanitize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain text", 100, "plain text"},
		{"cr\rlf\nnul\x00", 100, "cr?lf?nul?"},
		{"8bit \xc3\xa9", 100, "8bit ??"},
		{"abcdef", 3, "abc"},
		{"\x7f\x1b[31m", 10, "??[31m"},
	} {
		if got := sanitize.Text(tt.in, tt.max); got != tt.want {
			t.Errorf("sanitize.Text(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// A refusal dialogue over pipes (a launcher that is not a socket) leaves
// the pipes in blocking mode, as it found them: O_NONBLOCK belongs to the
// open file, which others share.
func TestDialogueRestoresBlocking(t *testing.T) {
	if os.Getenv("MXFRONT_PIPE_HELPER") == "1" {
		l := &Life{Policy: &Policy{Deny: list(t, "192.0.2.0/24")}, Dialogue: DialogueConfig{Hostname: "mx"}, Log: &logline.Logger{}}
		if err := l.RunChain(context.Background(), []string{"/bin/true"}, os.LookupEnv, nil); err != nil {
			os.Exit(3)
		}
		for _, fd := range []int{0, 1} {
			if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
				os.Exit(4 + fd)
			}
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDialogueRestoresBlocking$")
	cmd.Env = append(os.Environ(), "MXFRONT_PIPE_HELPER=1", "TCPREMOTEIP=192.0.2.7")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	var out strings.Builder
	cmd.Stdout = &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("helper: %v (exit 4/5: fd 0/1 left non-blocking); said %q", err, out.String())
	}
	if !strings.Contains(out.String(), "221 2.0.0 Bye") {
		t.Fatalf("dialogue said %q", out.String())
	}
}

// A bug in a check in chain mode (a greylist store that panics) ends in a
// 421 to the client, a logged error and exit 111, never in a Go panic
// written to fd 2 (under inetd, the client's connection).
func TestChainSurvivesPanic(t *testing.T) {
	if os.Getenv("MXFRONT_PANIC_HELPER") == "1" {
		gp, err := greylist.NewPolicy(panicStore{greylist.NewMemory()}, greylist.Config{})
		if err != nil {
			os.Exit(3)
		}
		var log strings.Builder
		l := &Life{Policy: &Policy{Greylist: &Greylisting{Policy: gp}}, Dialogue: DialogueConfig{Hostname: "mx"}, Log: logline.WriterLogger(&log)}
		err = l.RunChain(context.Background(), []string{"/bin/true"}, os.LookupEnv, nil)
		if err == nil || !strings.Contains(err.Error(), "internal error") || !strings.Contains(log.String(), "bug in a check") {
			os.Exit(4)
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChainSurvivesPanic$")
	cmd.Env = append(os.Environ(), "MXFRONT_PANIC_HELPER=1", "TCPREMOTEIP=192.0.2.7")
	cmd.Stdin = strings.NewReader("")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\nstdout %q\nstderr %s", err, out.String(), errOut.String())
	}
	if out.String() != "421 4.3.0 mx Internal error, try again later\r\n" {
		t.Fatalf("client got %q", out.String())
	}
	if strings.Contains(errOut.String(), "goroutine") {
		t.Fatalf("a Go panic reached fd 2:\n%s", errOut.String())
	}
}

// panicStore is a greylist store with a bug: every read panics.
type panicStore struct{ greylist.Store }

func (panicStore) Get(context.Context, netip.Prefix) (greylist.Record, error) {
	panic("bug in a check")
}
