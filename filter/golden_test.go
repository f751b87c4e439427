package filter

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			got := judgeFile(t, file, strings.HasPrefix(name, "bounce-"))
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
