package filter

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRspamd answers /checkv2 with reply and records the last request's
// headers and body. (The end-to-end suite runs the real rspamd.)
type fakeRspamd struct {
	reply  string
	status int
	header http.Header
	body   string
}

func (f *fakeRspamd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/checkv2" || r.Method != http.MethodPost {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.header, f.body = r.Header.Clone(), string(b)
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	io.WriteString(w, f.reply)
}

func rspamdReply(action, extra string) string {
	return fmt.Sprintf(`{"is_skipped":false,"score":7.5,"required_score":15.0,"action":%q,"symbols":{"B_SYM":{"score":5},"A_SYM":{"score":2.5}}%s}`, action, extra)
}

// TestRspamdActions: each action rspamd gives is rendered as the issue
// and rspamd's milter do: reject 5xx (with smtp_message as the text when
// given), soft reject and greylist 4xx, add header and rewrite subject an
// accepted message with X-Spam: Yes (and the new subject), no action an
// acceptance; an unknown action or a broken reply does not refuse.
func TestRspamdActions(t *testing.T) {
	fake := &fakeRspamd{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	for _, tc := range []struct {
		reply, want, subject string
		spamYes              bool
	}{
		{rspamdReply("reject", ""), "554 5.7.1 message looks like spam (score 7.5, limit 15.0)", "", false},
		{rspamdReply("reject", `,"messages":{"smtp_message":"go away\r\nnow"}`), "554 5.7.1 go away  now", "", false},
		{rspamdReply("soft reject", `,"messages":{"smtp_message":"later"}`), "451 4.7.1 later", "", false},
		{rspamdReply("greylist", ""), "451 4.7.1 message deferred by the spam filter, try again later", "", false},
		{rspamdReply("add header", ""), "250 2.0.0 message accepted", "", true},
		{rspamdReply("rewrite subject", `,"subject":"*** SPAM *** x"`), "250 2.0.0 message accepted", "*** SPAM *** x", true},
		{rspamdReply("no action", ""), "250 2.0.0 message accepted", "", false},
		{rspamdReply("discard", ""), "250 2.0.0 message accepted", "", false},
	} {
		fake.reply = tc.reply
		cfg := DefaultConfig()
		cfg.Rspamd = []string{srv.URL}
		rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg), Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@x"}}})
		got := strings.Join(rep.AddHeaders, "|")
		if rep.Verdict.Reply() != tc.want || rep.Subject != tc.subject || strings.Contains(got, "X-Spam: Yes") != tc.spamYes {
			t.Errorf("%s: %q subject %q headers %q", tc.reply, rep.Verdict.Reply(), rep.Subject, got)
		}
	}
	// Headers with --spam-headers, and rspamd's own milter headers.
	fake.reply = rspamdReply("no action", `,"milter":{"add_headers":{"X-Rspamd-Server":"mx1","X-Two":[{"value":"a","order":0},"b"],"Bad Name":"x"}}`)
	cfg := DefaultConfig()
	cfg.Rspamd, cfg.SpamHeaders = []string{srv.URL}, true
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg), Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@x"}}})
	want := "X-Spam-Flag: NO|X-Spam-Score: 7.5|X-Spam-Status: No, score=7.5 required=15.0 action=no action tests=A_SYM,B_SYM|X-Rspamd-Server: mx1|X-Two: a|X-Two: b"
	if got := strings.Join(rep.AddHeaders, "|"); got != want {
		t.Errorf("headers\n got %q\nwant %q", got, want)
	}
	// A broken reply or an HTTP error is a scanner that cannot answer.
	for _, bad := range []struct {
		reply  string
		status int
	}{{"not json", 0}, {`{"error":"bad message"}`, 0}, {"oops", 500}} {
		fake.reply, fake.status = bad.reply, bad.status
		rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
		if rep.Verdict.Reply() != "451 4.3.0 content scanner unavailable, try again later" {
			t.Errorf("%q/%d: %q", bad.reply, bad.status, rep.Verdict.Reply())
		}
	}
}

// TestRspamdRequest: the message is the body, and the envelope and
// connection go in the headers rspamd reads.
func TestRspamdRequest(t *testing.T) {
	fake := &fakeRspamd{reply: rspamdReply("no action", "")}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Rspamd = []string{strings.TrimPrefix(srv.URL, "http://")} // HOST:PORT
	env := map[string]string{"TCPREMOTEIP": "192.0.2.7", "MXFRONT_HELO": "client.example.org", "TCPREMOTEHOST": "client.example.org", "AUTH_AS": "alice"}
	m := &Message{Spool: spool(t, cleanMsg), Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@x", "c\r\n@y"}},
		Getenv: func(k string) string { return env[k] }, QueueID: "1abc-D"}
	rep := cfg.Judge(context.Background(), m)
	h := fake.header
	if rep.Verdict.Action != Accept || fake.body != cleanMsg || h.Get("IP") != "192.0.2.7" || h.Get("Helo") != "client.example.org" ||
		h.Get("From") != "a@example.org" || strings.Join(h.Values("Rcpt"), "|") != "b@x|c  @y" || h.Get("Queue-Id") != "1abc-D" ||
		h.Get("Hostname") != "client.example.org" || h.Get("User") != "alice" {
		t.Fatalf("%q: body %q headers %v", rep.Verdict.Reply(), fake.body, h)
	}
	m.Env.Sender = ""
	cfg.Judge(context.Background(), m)
	if fake.header.Get("From") != "<>" {
		t.Errorf("bounce: From %q", fake.header.Get("From"))
	}
}

// TestRspamdUnixSocket: a socket path is dialled as a unix socket.
func TestRspamdUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "rspamd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &fakeRspamd{reply: rspamdReply("reject", "")}}
	go srv.Serve(l)
	defer srv.Close()
	for _, addr := range []string{sock, "unix:" + sock} {
		res, err := RspamdCheck(context.Background(), addr, RspamdEnvelope{}, strings.NewReader(cleanMsg), int64(len(cleanMsg)), 30*time.Second)
		if err != nil || res.Action != "reject" {
			t.Errorf("%s: %+v %v", addr, res, err)
		}
	}
}

// TestScannersInOrder: the first address that answers decides and is
// logged; ones that cannot answer are passed over; none answering is a
// scanner down; the total time is shared, the last try getting the rest.
func TestScannersInOrder(t *testing.T) {
	down := filepath.Join(t.TempDir(), "down.sock")
	fake := &fakeRspamd{reply: rspamdReply("reject", "")}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Rspamd = []string{down, srv.URL}
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
	if rep.Verdict.Code != 554 || strings.Join(rep.Scanners, " ") != "rspamd "+srv.URL {
		t.Errorf("%q scanners %q", rep.Verdict.Reply(), rep.Scanners)
	}
	cfg.Rspamd = []string{down, down + "2"}
	rep = cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
	if rep.Verdict.Reply() != "451 4.3.0 content scanner unavailable, try again later" || !strings.Contains(rep.Checks[len(rep.Checks)-1].Result, down+"2") {
		t.Errorf("%q %+v", rep.Verdict.Reply(), rep.Checks)
	}
	var shares []time.Duration
	tryInOrder(context.Background(), []string{"a", "b", "c"}, 90*time.Second, func(_ context.Context, _ string, d time.Duration) error {
		shares = append(shares, d)
		return &scannerDown{fmt.Errorf("down")}
	})
	// A third of 90 s, then half of what is left, then all of it: upper
	// bounds and an order, never a measured duration.
	if len(shares) != 3 || shares[0] > 30*time.Second || shares[1] > 45*time.Second || shares[2] > 90*time.Second ||
		!(shares[0] < shares[1] && shares[1] < shares[2]) {
		t.Errorf("shares %v", shares)
	}
}

// TestObserve: every check runs, none skipped after a refusal, and the
// message is accepted with the verdict it would have had in the report.
func TestObserve(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Observe = true
	cfg.Exec = []string{"echo ran; exit 0"}
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, "Subject: no from\n\nx\n"), Environ: []string{"PATH=/usr/bin:/bin"}})
	if rep.Verdict.Reply() != "250 2.0.0 message accepted" || rep.Observed == nil || rep.Observed.Reply() != "554 5.6.0 message lacks a required header: From" {
		t.Fatalf("%q observed %+v", rep.Verdict.Reply(), rep.Observed)
	}
	if last := rep.Checks[len(rep.Checks)-1]; last.Name != CheckExec || last.Result != "pass" {
		t.Errorf("exec after a refusal: %+v", rep.Checks)
	}
}

// TestReplaceSubject: the first Subject field and its continuation lines
// are replaced, line ends kept; a message without one gets one.
func TestReplaceSubject(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"From: a\r\nSubject: old\r\n folded\r\nTo: b\r\n\r\nbody\r\nSubject: in body\r\n", "From: a\r\nSubject: NEW\r\nTo: b\r\n\r\nbody\r\nSubject: in body\r\n"},
		{"From: a\n\nbody\n", "From: a\nSubject: NEW\n\nbody\n"},
		{"SUBJECT:x\nsubject: second\n\n", "Subject: NEW\nsubject: second\n\n"},
	} {
		eol := "\n"
		if strings.Contains(tc.in, "\r\n") {
			eol = "\r\n"
		}
		b, _ := io.ReadAll(replaceSubject(strings.NewReader(tc.in), "NEW", eol))
		if string(b) != tc.want {
			t.Errorf("%q: got %q want %q", tc.in, b, tc.want)
		}
	}
}
