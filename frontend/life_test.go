package frontend

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// fakeConn is a Conn whose greeting delay ends as told and whose dialogue
// runs on one end of a net.Pipe, with a client script on the other.
type fakeConn struct {
	talk    Talk
	stopped bool
	client  func(r *bufio.Reader, w net.Conn) // the client's side of the dialogue
	said    []Reply
	closed  bool
	greeted Reply
	done    chan struct{} // the client script ended
}

func (c *fakeConn) Greet(first Reply, _ time.Duration) (Talk, error) {
	c.greeted = first
	return c.talk, nil
}

func (c *fakeConn) Dialogue() (DialogueConn, error) {
	ours, theirs := net.Pipe()
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		defer theirs.Close()
		_ = theirs.SetDeadline(time.Now().Add(10 * time.Second))
		c.client(bufio.NewReader(theirs), theirs)
	}()
	return ours, nil
}

func (c *fakeConn) DialogueDone() bool { <-c.done; return c.stopped }
func (c *fakeConn) Say(r Reply)        { c.said = append(c.said, r) }
func (c *fakeConn) Close()             { c.closed = true }

// quitter reads the greeting and quits.
func quitter(r *bufio.Reader, w net.Conn) {
	_, _ = r.ReadString('\n')
	_, _ = w.Write([]byte("QUIT\r\n"))
	_, _ = r.ReadString('\n')
}

type fakeHandover struct {
	err    error
	passed *Passed
}

func (h *fakeHandover) Hand(_ context.Context, p *Passed) error {
	h.passed = p
	if h.err == nil {
		p.Announce()
	}
	return h.err
}

// recorder is an Observer that keeps what it hears.
type recorder struct {
	decided []Verdict
	replies []int
	ended   []Ending
}

func (r *recorder) Decided(_ Client, v Verdict) { r.decided = append(r.decided, v) }
func (r *recorder) Replied(rp Reply)            { r.replies = append(r.replies, rp.Code) }
func (r *recorder) Ended(e Ending)              { r.ended = append(r.ended, e) }

func TestLife(t *testing.T) {
	deny := list(t, "192.0.2.0/24")
	denied := Client{Remote: netip.MustParseAddrPort("192.0.2.7:4000")}
	clean := Client{Remote: netip.MustParseAddrPort("198.51.100.1:4000")}
	delay := DialogueConfig{Hostname: "mx", GreetDelay: time.Second}
	for _, tc := range []struct {
		name     string
		dialogue DialogueConfig
		client   Client
		conn     fakeConn
		hand     error
		wantErr  bool
		outcome  Outcome
		by       Check
		said     string // the 421 the life itself wrote, if any
		logged   string // a word of the connection's line
		handed   bool
	}{
		{name: "pass", client: clean, outcome: OutcomePassed, logged: "msg=pass", handed: true},
		{name: "denied", client: denied, conn: fakeConn{client: quitter}, outcome: OutcomeRefused, by: ByDenyList,
			logged: "msg=refused"},
		{name: "hung up in the delay", dialogue: delay, client: clean, conn: fakeConn{talk: HungUp},
			outcome: OutcomeHungUp, logged: `msg="hung up"`},
		{name: "early talker", dialogue: delay, client: clean, conn: fakeConn{talk: Early, client: quitter},
			outcome: OutcomeRefused, by: ByEarlyTalker, logged: "early talker"},
		{name: "talk heard only after the delay", dialogue: DialogueConfig{Hostname: "mx", GreetDelay: time.Nanosecond}, client: clean,
			conn: fakeConn{talk: Early}, outcome: OutcomePassed, logged: "msg=pass", handed: true},
		{name: "silent through the delay", dialogue: delay, client: clean, conn: fakeConn{talk: Silent},
			outcome: OutcomePassed, logged: "msg=pass", handed: true},
		{name: "busy", client: clean, hand: &TurnedAway{Text: "Error: too busy, try again later", Why: "max-children"},
			outcome: OutcomeBusy, said: "421 4.7.0 mx Error: too busy, try again later", logged: "reason=max-children", handed: true},
		{name: "hand-over failed", client: clean, hand: errors.New("cannot run x: no such file"), wantErr: true,
			outcome: OutcomeFailed, said: "421 4.3.0 mx Service temporarily unavailable", logged: `msg="exec failed"`, handed: true},
		{name: "stopped", client: denied, conn: fakeConn{stopped: true, client: func(r *bufio.Reader, w net.Conn) { _, _ = r.ReadString('\n') }},
			outcome: OutcomeRefused, by: ByDenyList, said: "421 4.3.2 mx Service shutting down, try again later", logged: "end=shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			obs := &recorder{}
			cfg := tc.dialogue
			if cfg.Hostname == "" {
				cfg.Hostname = "mx"
			}
			l := &Life{Policy: &Policy{Deny: deny}, Dialogue: cfg, Log: logline.WriterLogger(&log), Observer: obs}
			h := &fakeHandover{err: tc.hand}
			c := tc.conn
			err := l.Run(context.Background(), &c, tc.client, h, time.Now(), "via", "127.0.0.9")
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v", err)
			}
			if (h.passed != nil) != tc.handed {
				t.Fatalf("handed over: %v", h.passed != nil)
			}
			if len(obs.decided) != 1 || len(obs.ended) != 1 {
				t.Fatalf("observer heard %d verdicts and %d endings", len(obs.decided), len(obs.ended))
			}
			if e := obs.ended[0]; e.Outcome != tc.outcome || (tc.outcome == OutcomeRefused && e.Verdict.By != tc.by) ||
				(tc.outcome == OutcomeRefused) != (e.Transcript != nil) {
				t.Errorf("ending %v by %v, want %v by %v", e.Outcome, e.Verdict.By, tc.outcome, tc.by)
			}
			var said []string
			for _, r := range c.said {
				said = append(said, r.String())
			}
			if got := strings.Join(said, "|"); got != tc.said {
				t.Errorf("the life said %q, want %q", got, tc.said)
			}
			if !strings.Contains(log.String(), tc.logged) || !strings.Contains(log.String(), "via=127.0.0.9") {
				t.Errorf("log lacks %q or via=:\n%s", tc.logged, log.String())
			}
			if tc.dialogue.GreetDelay > 0 && c.greeted.Wire() != "220 mx ESMTP\r\n" {
				t.Errorf("greeting delay's first line from %+v", c.greeted)
			}
			if tc.outcome == OutcomeRefused && len(obs.replies) == 0 {
				t.Errorf("the dialogue's replies were not observed")
			}
		})
	}
}

// A bug in a check ends the connection with 421 and an error, observed as
// a failure, never a panic out of Run.
func TestLifeSurvivesPanic(t *testing.T) {
	gp, err := greylist.NewPolicy(panicStore{greylist.NewMemory()}, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &recorder{}
	var log strings.Builder
	l := &Life{Policy: &Policy{Greylist: &Greylisting{Policy: gp}}, Dialogue: DialogueConfig{Hostname: "mx"},
		Log: logline.WriterLogger(&log), Observer: obs}
	c := &fakeConn{}
	err = l.Run(context.Background(), c, Client{Remote: netip.MustParseAddrPort("192.0.2.7:1")}, &fakeHandover{}, time.Now())
	if err == nil || len(c.said) != 1 || c.said[0].Wire() != "421 4.3.0 mx Internal error, try again later\r\n" || !c.closed {
		t.Fatalf("error %v, said %v, closed %v", err, c.said, c.closed)
	}
	if len(obs.ended) != 1 || obs.ended[0].Outcome != OutcomeFailed || !strings.Contains(log.String(), "bug in a check") {
		t.Fatalf("endings %+v\n%s", obs.ended, log.String())
	}
}

// emfileStore is a greylist store out of fds: every read fails with EMFILE.
type emfileStore struct{ greylist.Store }

func (emfileStore) Get(context.Context, netip.Prefix) (greylist.Record, error) {
	return greylist.Record{}, &os.PathError{Op: "open", Path: "greylist.db", Err: syscall.EMFILE}
}

// A client the checks could not judge for lack of our own resources hears
// one 421 4.3.2 and is closed: no dialogue, no hand-over, a rejected line.
func TestLifeOutOfResources(t *testing.T) {
	gp, err := greylist.NewPolicy(emfileStore{greylist.NewMemory()}, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	obs := &recorder{}
	l := &Life{Policy: &Policy{Greylist: &Greylisting{Policy: gp}}, Dialogue: DialogueConfig{Hostname: "mx"},
		Log: logline.WriterLogger(&log), Observer: obs}
	c := &fakeConn{}
	h := &fakeHandover{}
	if err := l.Run(context.Background(), c, Client{Remote: netip.MustParseAddrPort("192.0.2.7:1")}, h, time.Now()); err != nil {
		t.Fatal(err)
	}
	if h.passed != nil || c.done != nil {
		t.Fatal("handed over, or a dialogue ran")
	}
	if len(c.said) != 1 || c.said[0].Wire() != "421 4.3.2 mx Too busy, try again later\r\n" || !c.closed {
		t.Fatalf("said %v, closed %v", c.said, c.closed)
	}
	if !strings.Contains(log.String(), "msg=rejected") || !strings.Contains(log.String(), "reason=out-of-resources") {
		t.Errorf("log:\n%s", log.String())
	}
	if len(obs.ended) != 1 || obs.ended[0].Outcome != OutcomeBusy || obs.ended[0].Why != "out-of-resources" {
		t.Errorf("endings %+v", obs.ended)
	}
}
