package filter

import (
	"io"
	"runtime"
	"strings"
	"testing"
)

// endless yields n bytes: a prefix, then the filler byte, never a line end.
type endless struct {
	prefix string
	fill   byte
	n      int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && k < e.n {
		if len(e.prefix) > 0 {
			p[k] = e.prefix[0]
			e.prefix = e.prefix[1:]
		} else {
			p[k] = e.fill
		}
		k++
	}
	e.n -= k
	return k, nil
}

// TestLongLinesStayOutOfMemory: a 50 MB message that is one header line
// (or a MIME part whose header is one line) is judged without holding the
// line: the header section limit stops the reading, and the allocations
// stay far below the message's size.
func TestLongLinesStayOutOfMemory(t *testing.T) {
	const size = 50 << 20
	for name, prefix := range map[string]string{
		"top header":   "From: a@example.org\nX-Long: ",
		"part header":  "From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX-Long: ",
		"inner header": "From: a@example.org\nContent-Type: message/rfc822\n\nX-Long: ",
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			st, err := Analyze(&endless{prefix: prefix, fill: 'a', n: size}, Limits{TempDir: t.TempDir()})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("%d MiB allocated for a 50 MB line", alloc>>20)
			}
			if !strings.Contains(st.MIMEProblem, "longer than") && !strings.Contains(st.MIMEProblem, "too large") {
				t.Errorf("MIME problem %q, want the header limit", st.MIMEProblem)
			}
		})
	}
}

// TestPartHeaderLimit: --max-header-size bounds each MIME part's header
// (LF or CRLF), never a part's body or the epilogue after the closing
// boundary.
func TestPartHeaderLimit(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, body string
		bad        bool
	}{
		{"short headers", "--b\nContent-Type: text/plain\n\nhello\n--b--\n", false},
		{"long body line", "--b\n\n" + long + "\n--b--\n", false},
		{"long epilogue", "--b\n\nhi\n--b--\n" + long + "\n", false},
		{"long preamble", long + "\n--b\n\nhi\n--b--\n", false},
		{"long part header", "--b\nX-Long: " + long + "\n\nhi\n--b--\n", true},
		{"long part header, CRLF", "--b\r\nX-A: 1\r\nX-Long: " + long + "\r\n\r\nhi\r\n--b--\r\n", true},
		{"second part", "--b\n\nhi\n--b\nX-Long: " + long + "\n\nhi\n--b--\n", true},
		{"CRLF short", "--b\r\nX-A: 1\r\n\r\n" + long + "\r\n--b--\r\n", false},
	} {
		msg := "From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n" + tc.body
		st, err := Analyze(strings.NewReader(msg), Limits{MaxHeader: 150})
		if err != nil {
			t.Fatal(err)
		}
		if bad := strings.Contains(st.MIMEProblem, "MIME part header longer than 150 bytes"); bad != tc.bad || !tc.bad && st.MIMEProblem != "" {
			t.Errorf("%s: MIME problem %q", tc.name, st.MIMEProblem)
		}
	}
}
