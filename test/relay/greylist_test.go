package relay_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Greylisting by triplet in front of exim: the first RCPT of a triplet
// gets 451; after the delay the same triplet is delivered while another
// recipient of that session is still new (451); the next session from
// the network passes whatever its triplets. `mxfront greylist list` shows
// the network passed and the triplets under 100::/64.
func TestTripletGreylisting(t *testing.T) {
	b := build(t)
	s := newSite(t)
	ex := testpeer.NewExim(t, testpeer.EximOptions{})
	db := filepath.Join(t.TempDir(), "greylist.db")
	const delay = 2 * time.Second
	addr := relayed(t, b, ex, s.flags("--greylist", "--greylist-by", "triplet", "--greylist-db", db,
		"--greylist-delay", delay.String(), "--greylist-window", "1h"))
	sess := func(src string, rcpts ...string) string {
		in := "EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\n"
		for _, r := range rcpts {
			in += "RCPT TO:<" + r + ">\r\n"
		}
		in += "DATA\r\nSubject: greylisted by triplet\r\n\r\nhi\r\n.\r\nQUIT\r\n"
		return testpeer.Session(t, addr, src, []byte(in), 60*time.Second)
	}
	out := sess("127.0.0.2", "alice@example.test")
	// The triplet's record was written before its 451 was sent, so the
	// delay is counted from the session's end, not its start (a loaded
	// machine can take a second between the two).
	first := time.Now()
	if !strings.Contains(out, "451 4.7.1 Greylisted: please try again in 2s\r\n") || strings.Contains(out, "354") {
		t.Fatalf("first attempt:\n%s", out)
	}
	if eximLogHas(ex, "alice@") {
		t.Fatalf("exim heard of a greylisted recipient:\n%s", ex.Log())
	}
	time.Sleep(time.Until(first.Add(delay + 200*time.Millisecond))) // the greylist's own delay
	out = sess("127.0.0.2", "alice@example.test", "bob@example.test")
	if !strings.Contains(out, "250 Accepted\r\n451 4.7.1 Greylisted") || !strings.Contains(out, "354") {
		t.Fatalf("the retry:\n%s", out)
	}
	if msgs := awaitMessages(t, ex, 1); len(msgs) != 1 || eximLogHas(ex, "bob@") {
		t.Fatalf("exim delivered %d messages\n%s", len(msgs), ex.Log())
	}
	// The network passes now: another address of the /24, new triplets.
	out = sess("127.0.0.3", "bob@example.test")
	if strings.Contains(out, "451") || !strings.Contains(out, "250 Accepted") {
		t.Fatalf("the network after its triplet passed:\n%s", out)
	}
	list, code := testpeer.Run(t, 30*time.Second, exec.Command(b.mxfront, "greylist", "list", "--json", "--greylist-db", db))
	if code != 0 {
		t.Fatalf("greylist list: exit %d\n%s", code, list)
	}
	var entries []struct{ Network, Status string }
	if err := json.Unmarshal([]byte(list), &entries); err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	var triplets int
	status := map[string]string{}
	for _, e := range entries {
		status[e.Network] = e.Status
		if strings.HasPrefix(e.Network, "100::") && strings.HasSuffix(e.Network, "/128") {
			triplets++
		}
	}
	if status["127.0.0.0/24"] != "passing" || triplets != 2 {
		t.Fatalf("the store holds %v", status)
	}
}
