package frontend

import "testing"

func TestReplyWire(t *testing.T) {
	for _, tc := range []struct {
		r          Reply
		more       bool
		wire, line string
	}{
		{Reply{554, StatusPolicy, "go away"}, false, "554 5.7.1 go away\r\n", "554 5.7.1 go away"},
		{Reply{Code: 220, Text: "mx ESMTP"}, false, "220 mx ESMTP\r\n", "220 mx ESMTP"},
		{Reply{Code: 220, Text: "mx ESMTP"}, true, "220-mx ESMTP\r\n", "220 mx ESMTP"},
		{Reply{Code: 250, Text: "mx\nPIPELINING\n8BITMIME"}, false, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n", "250 mx; PIPELINING; 8BITMIME"},
		{Reply{452, Status{4, 5, 3}, "a\nb"}, false, "452-4.5.3 a\r\n452 4.5.3 b\r\n", "452 4.5.3 a; b"},
		{Reply{451, Status{4, 10, 999}, "x"}, false, "451 4.10.999 x\r\n", "451 4.10.999 x"},
	} {
		if got := string(tc.r.AppendWire(nil, tc.more)); got != tc.wire {
			t.Errorf("%+v wire %q, want %q", tc.r, got, tc.wire)
		}
		if got := tc.r.String(); got != tc.line {
			t.Errorf("%+v line %q, want %q", tc.r, got, tc.line)
		}
	}
}

// --temp and rblsmtpd's -c make a permanent refusal temporary, code and
// enhanced code alike; a temporary or positive reply is left alone.
func TestReplyTemp(t *testing.T) {
	for _, tc := range []struct{ in, want Reply }{
		{Reply{554, StatusPolicy, "x"}, Reply{451, Status{4, 7, 1}, "x"}},
		{Reply{553, Status{5, 1, 8}, "x"}, Reply{451, Status{4, 1, 8}, "x"}},
		{Reply{550, Status{}, "x"}, Reply{451, Status{}, "x"}},
		{Reply{451, Status{4, 7, 1}, "x"}, Reply{451, Status{4, 7, 1}, "x"}},
		{Reply{250, StatusOK, "x"}, Reply{250, StatusOK, "x"}},
	} {
		got := tc.in.Temp()
		if got != tc.want || got.Temporary() != (got.Code/100 == 4) {
			t.Errorf("%v.Temp() = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClosingReplies(t *testing.T) {
	for _, tc := range []struct {
		r    Reply
		want string
	}{
		{InternalError("mx"), "421 4.3.0 mx Internal error, try again later\r\n"},
		{Unavailable(""), "421 4.3.0 localhost Service temporarily unavailable\r\n"},
		{TooBusy("mx", "Error: too many connections"), "421 4.7.0 mx Error: too many connections\r\n"},
		{ShuttingDown("mx"), "421 4.3.2 mx Service shutting down, try again later\r\n"},
	} {
		if got := tc.r.Wire(); got != tc.want || !tc.r.Temporary() {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// Pipes (a launcher that is not a TCP one) name the client in TCPREMOTEIP
// and TCPREMOTEPORT; a port that is not one is unknown (0), never 65535.
func TestFindConnectionPipes(t *testing.T) {
	for _, tc := range []struct {
		port string
		want uint16
	}{{"4567", 4567}, {"99999", 0}, {"", 0}, {"-1", 0}, {"25x", 0}} {
		env := map[string]string{"TCPREMOTEIP": "192.0.2.7", "TCPREMOTEPORT": tc.port}
		c, err := FindConnection(func(k string) string { return env[k] })
		if err != nil {
			t.Skipf("fd 0 is a socket here: %v", err)
		}
		if c.Remote.Port() != tc.want || c.Remote.Addr().String() != "192.0.2.7" {
			t.Errorf("TCPREMOTEPORT=%q: %v, want port %d", tc.port, c.Remote, tc.want)
		}
	}
}
