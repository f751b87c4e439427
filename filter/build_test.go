package filter

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// mxfilterBin builds ./cmd/mxfilter alone, once per test process, as the
// Makefile builds it (static, without cli's doc generators). Only mxfilter:
// its tests must not depend on the rest of ./cmd/... compiling.
func mxfilterBin(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root, err := testpeer.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "mxfilter-bin-")
		if err != nil {
			buildErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		buildBin = filepath.Join(dir, "mxfilter")
		cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", buildBin, "./cmd/mxfilter")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err, out}
		}
	})
	if buildErr != nil {
		tb.Fatalf("go build ./cmd/mxfilter: %v", buildErr)
	}
	return buildBin
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}
