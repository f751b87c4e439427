package metrics_test

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// /healthz answers 200 while serve accepts and 503 from the moment it
// stops accepting (SIGTERM), while /metrics goes on answering for the
// refusal dialogues that drain; the listener closes when serve exits.
func TestHealthzWhenStopping(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(bin, "serve", "--listen", addr, "--metrics-listen", metrics, "--log", "stderr",
		"--hostname", "mx.example.test", "--deny", "127.0.0.0/8", "--shutdown-timeout", "60s", "--", "/bin/true"))
	testpeer.WaitOutput(t, p, "metrics="+metrics)
	if code, body := get(t, "http://"+metrics+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz while accepting: %d %q", code, body)
	}
	held := testpeer.Dial(t, addr, "127.0.0.5")
	held.Expect(t, "220 ")
	testpeer.Poll(t, "one refusal dialogue open", func() (bool, string) {
		m := scrape(t, "http://"+metrics+"/metrics")
		return m["mxfront_refusal_dialogues_open"] == 1, fmt.Sprint(m["mxfront_refusal_dialogues_open"])
	})
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testpeer.Poll(t, "/healthz to say 503", func() (bool, string) {
		code, body := get(t, "http://"+metrics+"/healthz")
		return code == 503, fmt.Sprint(code, " ", body)
	})
	if m := scrape(t, "http://"+metrics+"/metrics"); m["mxfront_refusal_dialogues_open"] != 1 {
		t.Errorf("while draining: %v dialogues open, want 1", m["mxfront_refusal_dialogues_open"])
	}
	held.Send(t, "QUIT\r\n")
	held.Expect(t, "221 ")
	testpeer.WaitOutput(t, p, "msg=stopped")
	testpeer.Poll(t, "the metrics listener to close", func() (bool, string) {
		c, err := net.DialTimeout("tcp", metrics, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil, fmt.Sprint(err)
	})
}

// A bad --metrics-listen is a usage error (100); an address taken is a
// temporary failure (111); both before serve accepts anyone.
func TestMetricsListenErrors(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		addr, want string
		code       int
	}{
		{"nonsense", "mxfront: error: bad --metrics-listen nonsense", 100},
		{taken.Addr().String(), "--metrics-listen " + taken.Addr().String(), 111},
	} {
		addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		out, code := testpeer.Run(t, 30*time.Second, exec.Command(bin, "serve", "--listen", addr, "--metrics-listen", tt.addr,
			"--log", "stderr", "--", "/bin/true"))
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("--metrics-listen %s: exit %d, want %d with %q:\n%s", tt.addr, code, tt.code, tt.want, out)
		}
	}
}

// Chain mode's executable links neither client_golang nor the metrics
// package (nor net/http, which TestLeanImports already bars through
// "net"); mxfront-cli does.
func TestChainModeLinksNoMetrics(t *testing.T) {
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	deps := func(pkg string) string {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		return string(out)
	}
	const metrics = "github.com/mxfront/mxfront/frontend/serve/metrics"
	if d := deps("./cmd/mxfront"); strings.Contains(d, "github.com/prometheus/") || strings.Contains(d, metrics) {
		t.Error("cmd/mxfront links the metrics: chain mode's every start would pay for them")
	}
	if d := deps("./cmd/mxfront-cli"); !strings.Contains(d, metrics) || !strings.Contains(d, "github.com/prometheus/client_golang/prometheus\n") {
		t.Error("go list -deps ./cmd/mxfront-cli does not show the metrics: this test looks at the wrong thing")
	}
}
