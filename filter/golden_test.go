package filter

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const corpus = "../testdata/filter/corpus"

// TestCorpus judges every message in the corpus with the built-in checks
// (required headers From, Date and Message-ID) and compares the verdict and
// the check results with NAME.golden; a mismatch writes NAME.got beside it.
// Messages named bounce-* have the empty envelope sender.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpus, "*.eml"))
	if err != nil || len(files) < 20 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	intended := generatedVerdicts(t)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			got := judgeFile(t, file, strings.HasPrefix(name, "bounce-"))
			// The generator's verdict was written before the code: -update
			// cannot bless a golden file that contradicts it.
			if want, ok := intended[name]; ok && !strings.HasPrefix(got, want) {
				t.Errorf("%s: reply %q, the generator wants one starting %q", name, strings.SplitN(got, "\n", 2)[0], want)
			}
			golden := strings.TrimSuffix(file, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./filter -run TestCorpus -update)", err)
			}
			gotFile := strings.TrimSuffix(file, ".eml") + ".got"
			if got != string(want) {
				os.WriteFile(gotFile, []byte(got), 0o644)
				t.Errorf("%s: verdict differs from %s (see %s):\n got: %s\nwant: %s", name, golden, gotFile, got, want)
			} else {
				os.Remove(gotFile)
			}
		})
	}
}

func judgeFile(t *testing.T, file string, bounce bool) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sp, err := NewSpool(t.TempDir(), f, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	cfg := DefaultConfig()
	cfg.RequireHeaders = []string{"From", "Date", "Message-ID"}
	env := Envelope{Sender: "alice@example.org", Recipients: []string{"bob@example.test"}}
	if bounce {
		env.Sender = ""
	}
	rep := cfg.Judge(context.Background(), &Message{Spool: sp, Env: env})
	var b bytes.Buffer
	fmt.Fprintln(&b, rep.Verdict.Reply())
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%s: %s\n", c.Name, c.Result)
	}
	return b.String()
}

// generatedVerdicts reads the generator's list: message name → the reply
// it must start with.
func generatedVerdicts(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, "GENERATED"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if name, want, ok := strings.Cut(l, "\t"); ok && !strings.HasPrefix(l, "#") {
			out[name] = want
		}
	}
	if len(out) < 50 {
		t.Fatalf("GENERATED lists %d messages", len(out))
	}
	return out
}

// TestCorpusIsGenerated: the committed generated messages are what
// testdata/filter/gen writes (no hand edits, no stale files).
func TestCorpusIsGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./testdata/filter/gen", "-out", dir)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./testdata/filter/gen: %v\n%s", err, out)
	}
	made, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range made {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(corpus, filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the generator writes (%v): run go run ./testdata/filter/gen", filepath.Base(f), err)
		}
	}
	for name := range generatedVerdicts(t) {
		if _, err := os.Stat(filepath.Join(corpus, name+".golden")); err != nil {
			t.Errorf("%s: no golden file (run go test ./filter -run TestCorpus -update)", name)
		}
	}
}
