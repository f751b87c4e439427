// Package metrics_test is the end-to-end suite of serve mode's
// --metrics-listen: a real Prometheus scrapes a real `mxfront serve`
// after a known mix of clients, and headless Chromium renders its status
// page. Everything runs on loopback, on free ports; the DNS lists are an
// rbldnsd the test starts.
package metrics_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// program is PROGRAM: it greets, answers one line with 221, and exits 1
// for 127.0.0.11 (0 for everyone else), so that exits are counted by
// status.
const program = `echo "220 sink ready"; read x; echo "221 sink bye"; [ "$TCPREMOTEIP" = 127.0.0.11 ] && exit 1; exit 0`

// served is a running `mxfront serve --metrics-listen` after the mix.
type served struct {
	addr, metrics string
	proc          *testpeer.Proc
}

// The mix of clients, each from its own loopback address:
//
//	127.0.0.66  denied, its dialogue held open while a second connection
//	            from it is rejected by --max-conns-per-ip 1
//	127.0.0.67  denied
//	127.0.0.77  trusted (allow list): PROGRAM, exit 0
//	127.0.0.2   listed by bl.test
//	127.0.0.10  passed (greylist skip list): PROGRAM, exit 0
//	127.0.0.11  passed (greylist skip list): PROGRAM, exit 1
//	127.0.0.12  talks before the greeting ends (skip list): early talker
//	127.0.0.13  hangs up in the greeting delay (skip list)
//	127.0.0.20  greylisted (new); err.test answers it 127.255.255.254
//	127.0.0.21  greylisted (new)
//
// and then one SIGHUP (a list reload).
func startMix(t *testing.T) served {
	t.Helper()
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	dns := testpeer.StartRbldnsd(t,
		testpeer.RbldnsdZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:Listed by bl.test\n127.0.0.2\n"},
		testpeer.RbldnsdZone{Name: "err.test", Type: "ip4set", Data: "127.0.0.20 :127.255.255.254:refused\n"})
	dir := t.TempDir()
	skip := testpeer.WriteFile(t, dir, "skip", "127.0.0.10\n127.0.0.11\n127.0.0.12\n127.0.0.13\n")
	deny := testpeer.WriteFile(t, dir, "deny", "127.0.0.64/28 Denied here\n")
	s := served{addr: fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), metrics: fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))}
	s.proc = testpeer.Start(t, exec.Command(bin, "serve", "--listen", s.addr, "--metrics-listen", s.metrics,
		"--hostname", "mx.example.test", "--log", "stderr",
		"--deny-file", deny, "--allow", "127.0.0.77",
		"--dnsbl", "bl.test", "--dnsbl", "err.test", "--dns-server", dns.Addr,
		// err.test fails the RFC 5782 health check (127.0.0.2 is not
		// listed): without this it would be set aside at start, and its
		// error answer would never be asked for or counted.
		"--dns-health-interval", "0",
		"--greylist", "--greylist-db", filepath.Join(dir, "greylist.db"), "--greylist-v4-prefix", "32",
		"--greylist-skip-file", skip, "--greet-delay", "3s", "--max-conns-per-ip", "1",
		"--", "/bin/sh", "-c", program))
	testpeer.WaitOutput(t, s.proc, "addr="+s.addr)
	testpeer.WaitOutput(t, s.proc, "metrics="+s.metrics)

	const script = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n"
	refusedSession := func(t *testing.T, c *testpeer.Client, ip, want string) {
		c.Send(t, "EHLO client-"+ip+".example.org\r\n"+script)
		if rest := c.Rest(t); !strings.Contains(rest, "\r\n"+want) {
			t.Errorf("%s: no %s reply to RCPT in %q", ip, want, rest)
		}
	}
	// Not delayed: refused by the lists, trusted by the allow list.
	held := testpeer.Dial(t, s.addr, "127.0.0.66")
	held.Expect(t, "220 ")
	second := testpeer.Dial(t, s.addr, "127.0.0.66")
	if l := second.Line(t); !strings.HasPrefix(l, "421 4.7.0") {
		t.Fatalf("second connection from 127.0.0.66: %q, want 421", l)
	}
	refusedSession(t, held, "127.0.0.66", "554 ")
	for _, ip := range []string{"127.0.0.67", "127.0.0.2"} {
		c := testpeer.Dial(t, s.addr, ip)
		c.Expect(t, "220 ")
		refusedSession(t, c, ip, "554 ")
	}
	trusted := testpeer.Dial(t, s.addr, "127.0.0.77")
	trusted.Expect(t, "220 sink ready")
	trusted.Send(t, "QUIT\r\n")
	trusted.Expect(t, "221 sink bye")
	// Sitting through the 3s greeting delay, side by side.
	t.Run("delayed", func(t *testing.T) {
		for _, ip := range []string{"127.0.0.10", "127.0.0.11"} {
			t.Run("passed "+ip, func(t *testing.T) {
				t.Parallel()
				c := testpeer.Dial(t, s.addr, ip)
				c.Await(t, "220 sink ready")
				c.Send(t, "QUIT\r\n")
				c.Expect(t, "221 sink bye")
			})
		}
		for _, ip := range []string{"127.0.0.20", "127.0.0.21"} {
			t.Run("greylisted "+ip, func(t *testing.T) {
				t.Parallel()
				c := testpeer.Dial(t, s.addr, ip)
				c.Await(t, "220 ")
				refusedSession(t, c, ip, "451 ")
			})
		}
		t.Run("early talker", func(t *testing.T) {
			t.Parallel()
			out := testpeer.Session(t, s.addr, "127.0.0.12", []byte("EHLO early.example.org\r\n"+script), 30*time.Second)
			if !strings.Contains(out, "\r\n554 ") {
				t.Errorf("early talker heard %q", out)
			}
		})
		t.Run("hangs up", func(t *testing.T) {
			t.Parallel()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.13")}}
			c, err := d.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	})
	if t.Failed() {
		t.FailNow()
	}
	if err := s.proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testpeer.WaitOutput(t, s.proc, "msg=reloaded")
	// Every connection counted and every PROGRAM reaped: mxfront's own
	// /metrics says so before anyone else is asked.
	testpeer.Poll(t, "serve to count 11 connections, 3 exits, 1 reload", func() (bool, string) {
		m := scrape(t, "http://"+s.metrics+"/metrics")
		return m.sum("mxfront_connections_total") == 11 && m.sum("mxfront_program_exits_total") == 3 &&
			m.sum("mxfront_list_reloads_total") == 1, fmt.Sprint(m)
	})
	return s
}

func TestMetricsAfterAMixOfClients(t *testing.T) {
	s := startMix(t)
	t.Run("prometheus", func(t *testing.T) { checkPrometheus(t, s) })
	t.Run("status page", func(t *testing.T) { checkStatusPage(t, s) })
	t.Run("healthz", func(t *testing.T) {
		if code, body := get(t, "http://"+s.metrics+"/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("/healthz: %d %q", code, body)
		}
	})
}

// expected are the series the mix must leave, by their labels.
var expected = map[string]float64{
	`mxfront_connections_total{outcome="passed"}`:                         2,
	`mxfront_connections_total{by="allow-list",outcome="trusted"}`:        1,
	`mxfront_connections_total{by="deny-list",outcome="refused"}`:         2,
	`mxfront_connections_total{by="dns-lists",outcome="refused"}`:         1,
	`mxfront_connections_total{by="greylist",outcome="refused"}`:          2,
	`mxfront_connections_total{by="early-talker",outcome="refused"}`:      1,
	`mxfront_connections_total{outcome="hung-up"}`:                        1,
	`mxfront_connections_total{by="max-conns-per-ip",outcome="rejected"}`: 1,
	`mxfront_connections_total{by="max-conns",outcome="rejected"}`:        0,
	`mxfront_connections_total{by="helo",outcome="refused"}`:              0,
	`mxfront_connections_total{outcome="failed"}`:                         0,
	// One RCPT refused in each of the six dialogues, six QUITs answered
	// by mxfront (PROGRAM answered the others), one 421 for the limit.
	`mxfront_replies_total{code="554"}`: 4,
	`mxfront_replies_total{code="451"}`: 2,
	`mxfront_replies_total{code="221"}`: 6,
	`mxfront_replies_total{code="421"}`: 1,
	// Seven clients got as far as the DNS lists (not the denied, the
	// trusted or the rejected ones).
	`mxfront_dns_lookups_total{result="listed",zone="bl.test"}`:        1,
	`mxfront_dns_lookups_total{result="not-listed",zone="bl.test"}`:    6,
	`mxfront_dns_lookups_total{result="error-answer",zone="err.test"}`: 1,
	`mxfront_dns_lookups_total{result="not-listed",zone="err.test"}`:   6,
	`mxfront_dns_lookups_total{result="timeout",zone="err.test"}`:      0,
	`mxfront_dns_lookup_duration_seconds_count{zone="bl.test"}`:        7,
	`mxfront_dns_lookup_duration_seconds_count{zone="err.test"}`:       7,
	// The DNS-listed client was refused before greylisting.
	`mxfront_greylist_decisions_total{state="skipped"}`: 4,
	`mxfront_greylist_decisions_total{state="new"}`:     2,
	`mxfront_greylist_decisions_total{state="error"}`:   0,
	`mxfront_greylist_store_errors_total`:               0,
	`mxfront_program_exits_total{status="0"}`:           2,
	`mxfront_program_exits_total{status="1"}`:           1,
	`mxfront_program_exits_total{status="signal"}`:      0,
	`mxfront_program_duration_seconds_count`:            3,
	`mxfront_connections_open`:                          0,
	`mxfront_children_running`:                          0,
	`mxfront_refusal_dialogues_open`:                    0,
	`mxfront_list_reloads_total{result="ok"}`:           1,
	`mxfront_list_reloads_total{result="failed"}`:       0,
}

// checkPrometheus starts Prometheus scraping the metrics every second,
// waits for a scrape that began after the mix was counted, and reads
// every mxfront series back through its HTTP API.
func checkPrometheus(t *testing.T, s served) {
	bin := testpeer.Need(t, "prometheus")
	dir := t.TempDir()
	web := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	conf := testpeer.WriteFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mxfront
    static_configs:
      - targets: ['%s']
`, s.metrics))
	counted := time.Now()
	testpeer.Start(t, exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn"))
	api := "http://" + web + "/api/v1/query?query="
	testpeer.Poll(t, "Prometheus to scrape mxfront after the mix", func() (bool, string) {
		r, err := query(api + url.QueryEscape(`timestamp(mxfront_build_info{job="mxfront"})`))
		if err != nil || len(r) != 1 {
			return false, fmt.Sprint(r, err)
		}
		return r[0].value > float64(counted.UnixMilli())/1000, fmt.Sprint(r)
	})
	r, err := query(api + url.QueryEscape(`{__name__=~"mxfront_.*",job="mxfront"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, x := range r {
		got[x.key()] = x.value
	}
	for k, want := range expected {
		v, ok := got[k]
		if !ok {
			t.Errorf("Prometheus has no %s", k)
		} else if v != want {
			t.Errorf("%s = %v, want %v", k, v, want)
		}
	}
	if up, err := query(api + url.QueryEscape(`up{job="mxfront"}`)); err != nil || len(up) != 1 || up[0].value != 1 {
		t.Errorf("up: %v %v", up, err)
	}
	for k := range got {
		if strings.Contains(k, "127.0.0.") {
			t.Errorf("an address in a label: %s", k)
		}
	}
	if t.Failed() {
		var keys []string
		for k, v := range got {
			keys = append(keys, fmt.Sprintf("%s %v", k, v))
		}
		sort.Strings(keys)
		t.Logf("Prometheus has:\n%s", strings.Join(keys, "\n"))
	}
}

// checkStatusPage renders / in headless Chromium: the DOM it dumps holds
// the mix's counts and a refusal's reason, and the screenshot is kept.
func checkStatusPage(t *testing.T, s served) {
	bin := testpeer.Need(t, "chromium")
	dir := t.TempDir()
	page := "http://" + s.metrics + "/"
	chromium := func(extra ...string) *exec.Cmd {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + filepath.Join(dir, "profile"),
			"--window-size=1200,1600"}, extra...)
		return exec.Command(bin, append(args, page)...)
	}
	out, code := testpeer.Run(t, 120*time.Second, chromium("--dump-dom"))
	if code != 0 {
		t.Fatalf("chromium --dump-dom: exit %d\n%s", code, out)
	}
	dom := out[strings.Index(out, "<html"):]
	shot := filepath.Join(dir, "status.png")
	if out, code := testpeer.Run(t, 120*time.Second, chromium("--screenshot="+shot)); code != 0 {
		t.Errorf("chromium --screenshot: exit %d\n%s", code, out)
	} else if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot: %v", err)
	} else if keep := os.Getenv("MXFRONT_TEST_ARTIFACTS"); keep != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(filepath.Join(keep, "metrics-status-page.png"), b, 0o644)
	}
	// Rows by their data-row: the last hour and since start (the test
	// runs well within the hour).
	for key, want := range map[string]uint64{
		"passed/": 2, "trusted/allow-list": 1, "refused/deny-list": 2, "refused/dns-lists": 1, "refused/greylist": 2,
		"refused/early-talker": 1, "hung-up/": 1, "rejected/max-conns-per-ip": 1, "refusals": 7, "total": 11,
		"greylist/new": 2, "greylist/skipped": 4, "greylist-store-errors": 0,
	} {
		cells := row(dom, `data-row="`+key+`"`)
		if len(cells) != 4 {
			t.Errorf("row %s: cells %q", key, cells)
			continue
		}
		if cells[1] != fmt.Sprint(want) || cells[3] != fmt.Sprint(want) {
			t.Errorf("row %s: last hour %s, since start %s; want %d", key, cells[1], cells[3], want)
		}
	}
	// Zones: health, then lookups, listed, timeouts, other errors,
	// latency; the last hour, then since start.
	if c := row(dom, `data-zone="bl.test"`); len(c) != 11 || c[0] != "in use (not checked yet)" || c[1] != "7" || c[2] != "1" ||
		c[6] != "7" || c[7] != "1" || !strings.HasSuffix(c[5], "s") {
		t.Errorf("bl.test: %q", c)
	}
	if c := row(dom, `data-zone="err.test"`); len(c) != 11 || c[4] != "1" || c[3] != "0" || c[9] != "1" {
		t.Errorf("err.test: %q", c)
	}
	text := stripTags(dom)
	for _, want := range []string{
		"deny list 127.0.0.64/28", "Denied here", "client-127.0.0.67.example.org", "127.0.0.67", // a refusal and its reason
		"early talker: spoke", "limit: max-conns-per-ip", "connections open 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page's text lacks %q", want)
		}
	}
	if strings.Contains(dom, "<script") {
		t.Error("the page has a script")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}

var (
	cellRe = regexp.MustCompile(`<td[^>]*>([^<]*)</td>`)
	tagRe  = regexp.MustCompile(`<[^>]+>`)
)

// row returns the cells of the table row whose opening tag holds attr.
func row(dom, attr string) []string {
	i := strings.Index(dom, attr)
	if i < 0 {
		return nil
	}
	rest := dom[i:]
	rest = rest[:strings.Index(rest, "</tr>")]
	var cells []string
	for _, m := range cellRe.FindAllStringSubmatch(rest, -1) {
		cells = append(cells, strings.TrimSpace(m[1]))
	}
	return cells
}

func stripTags(s string) string {
	s = tagRe.ReplaceAllString(s, " ")
	s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&nbsp;", " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// exposition is /metrics read as series → value (text format).
type exposition map[string]float64

func (e exposition) sum(name string) float64 {
	var n float64
	for k, v := range e {
		if k == name || strings.HasPrefix(k, name+"{") {
			n += v
		}
	}
	return n
}

func scrape(t *testing.T, u string) exposition {
	t.Helper()
	_, body := get(t, u)
	e := exposition{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			e[l[:i]] = v
		}
	}
	return e
}

// sample is one series of an instant query's answer.
type sample struct {
	metric map[string]string
	value  float64
}

// key writes the series as the exposition format does, labels sorted,
// without Prometheus's own job and instance.
func (s sample) key() string {
	var labels []string
	for k, v := range s.metric {
		if k != "__name__" && k != "job" && k != "instance" {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(labels)
	if len(labels) == 0 {
		return s.metric["__name__"]
	}
	return s.metric["__name__"] + "{" + strings.Join(labels, ",") + "}"
}

func query(u string) ([]sample, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query: %s", r.Error)
	}
	var out []sample
	for _, x := range r.Data.Result {
		s, _ := x.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %v", x.Value, err)
		}
		out = append(out, sample{x.Metric, v})
	}
	return out, nil
}
