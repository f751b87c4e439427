package filter

import (
	"os"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// mxfilterBin builds ./cmd/mxfilter alone, once per test process.
func mxfilterBin(tb testing.TB) string { return testpeer.Build(tb, "./cmd/mxfilter") }

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.RemoveBuilds()
	os.Exit(code)
}
