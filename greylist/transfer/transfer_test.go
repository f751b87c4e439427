package transfer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/transfer"
)

// The names here begin with transfer: the rest of the package's tests are
// being changed by others.

var transferBase = time.Unix(1_750_000_000, 0)

// transferPolicy is the default policy over s with its clock at now.
func transferPolicy(t *testing.T, s greylist.Store, now time.Time) *greylist.Policy {
	t.Helper()
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// transferFill records a mix as traffic leaves it at transferBase+1h:
// pending, passed, IPv6, and one abandoned (stale) network.
func transferFill(t *testing.T, s greylist.Store) {
	t.Helper()
	at := func(d time.Duration) time.Time { return transferBase.Add(d) }
	for _, step := range []struct {
		ip string
		at time.Duration
	}{
		{"192.0.2.1", 0}, {"192.0.2.9", 10 * time.Minute}, // passes
		{"198.51.100.7", 50 * time.Minute}, // pending
		{"2001:db8:1:2::25", 0}, {"2001:db8:1:2::26", 30 * time.Minute},
		{"203.0.113.5", -48 * time.Hour}, // abandoned two days ago: stale
	} {
		p := transferPolicy(t, s, at(step.at))
		if _, err := p.Decide(context.Background(), netip.MustParseAddr(step.ip)); err != nil {
			t.Fatal(err)
		}
	}
}

// transferList is the store's list --json lines, sorted.
func transferList(t *testing.T, p *greylist.Policy) []string {
	t.Helper()
	var lines []string
	err := p.List(context.Background(), func(e greylist.Entry) error {
		e.FirstSeen, e.LastPass = e.FirstSeen.UTC(), e.LastPass.UTC()
		b, err := json.Marshal(e)
		lines = append(lines, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}

func TestTransferBoltToMemory(t *testing.T) {
	bolt, err := greylist.OpenBolt(filepath.Join(t.TempDir(), "greylist.db"), greylist.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	transferFill(t, bolt)
	now := transferBase.Add(time.Hour)
	from := transferPolicy(t, bolt, now)

	var out bytes.Buffer
	n, err := transfer.Export(context.Background(), from, &out)
	if err != nil || n != 4 {
		t.Fatalf("Export = %d, %v; want 4 records", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	slices.Sort(lines)
	if want := transferList(t, from); !slices.Equal(lines, want) {
		t.Fatalf("Export wrote\n%s\nwant list --json's entries\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	mem := greylist.NewMemory()
	to := transferPolicy(t, mem, now)
	im, err := transfer.Import(context.Background(), to, bytes.NewReader(out.Bytes()))
	if err != nil || im != (greylist.Imported{Added: 3, Stale: 1}) {
		t.Fatalf("Import = %+v, %v; want 3 added, the stale one left out", im, err)
	}
	got, want := transferList(t, to), transferList(t, from)
	want = slices.DeleteFunc(want, func(l string) bool { return strings.Contains(l, `"stale"`) })
	if !slices.Equal(got, want) {
		t.Fatalf("imported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Again: every network is known now, and kept as it is.
	im, err = transfer.Import(context.Background(), to, bytes.NewReader(out.Bytes()))
	if err != nil || im != (greylist.Imported{Kept: 3, Stale: 1}) {
		t.Fatalf("second Import = %+v, %v; want 3 kept", im, err)
	}
}

// TestTransferListArray: list --json's array is read as well as lines.
func TestTransferListArray(t *testing.T) {
	in := `[
{"network":"192.0.2.0/24","first_seen":"2025-06-15T15:06:40Z","last_pass":"2025-06-15T15:16:40Z","status":"passing"},
{"network":"2001:db8:1:2::/64","first_seen":"2025-06-15T15:06:40Z","status":"pending"}
]
`
	now := time.Date(2025, 6, 15, 16, 0, 0, 0, time.UTC)
	p := transferPolicy(t, greylist.NewMemory(), now)
	im, err := transfer.Import(context.Background(), p, strings.NewReader(in))
	if err != nil || im.Added != 2 {
		t.Fatalf("Import = %+v, %v", im, err)
	}
	got := transferList(t, p)
	if len(got) != 2 || !strings.Contains(got[0], `"last_pass":"2025-06-15T15:16:40Z","status":"passing"`) {
		t.Fatalf("imported %v", got)
	}
	// An empty array, empty input.
	for _, in := range []string{"[]", " [\n]\n", "", "\n"} {
		if im, err := transfer.Import(context.Background(), p, strings.NewReader(in)); err != nil || im != (greylist.Imported{}) {
			t.Errorf("Import(%q) = %+v, %v", in, im, err)
		}
	}
}

func TestTransferOtherLength(t *testing.T) {
	in := `{"network":"192.0.2.0/25","first_seen":"2025-06-15T15:06:40Z"}
{"network":"192.0.2.0/24","first_seen":"2025-06-15T15:06:40Z"}
`
	p := transferPolicy(t, greylist.NewMemory(), time.Date(2025, 6, 15, 16, 0, 0, 0, time.UTC))
	im, err := transfer.Import(context.Background(), p, strings.NewReader(in))
	if err != nil || im != (greylist.Imported{Added: 1, OtherLength: 1}) {
		t.Fatalf("Import = %+v, %v", im, err)
	}
}

func TestTransferBadInput(t *testing.T) {
	const ok = `{"network":"192.0.2.0/24","first_seen":"2025-06-15T15:06:40Z"}` + "\n"
	for _, tc := range []struct{ in, err string }{
		{ok + `{"network":"192.0.2.7/24","first_seen":"2025-06-15T15:06:40Z"}`, "entry 2: network 192.0.2.7/24: not a network address"},
		{ok + `{"network":"192.0.2.0/24"}`, "entry 2: network 192.0.2.0/24: no first_seen"},
		{`{"first_seen":"2025-06-15T15:06:40Z"}`, "entry 1: "},
		{`{"network":"nonsense","first_seen":"2025-06-15T15:06:40Z"}`, "entry 1: "},
		{`{"network":"192.0.2.0/24","first_seen":"yesterday"}`, "entry 1: "},
		{`{"network":"192.0.2.0/24","first_seen":"2200-01-01T00:00:00Z"}`, "out of range"},
		{ok + `{"network":`, "entry 2: "},
		{ok + `42`, "entry 2: 42: not a JSON object"},
		{`[` + ok + `,`, "entry 2"},
		{`[` + ok + `] []`, "more than one array"},
	} {
		p := transferPolicy(t, greylist.NewMemory(), time.Date(2025, 6, 15, 16, 0, 0, 0, time.UTC))
		_, err := transfer.Import(context.Background(), p, strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Import(%q) = %v, want an error with %q", tc.in, err, tc.err)
		}
	}
}

func TestTransferCanceled(t *testing.T) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	p := transferPolicy(t, greylist.NewMemory(), transferBase)
	if _, err := transfer.Import(c, p, strings.NewReader(`{"network":"192.0.2.0/24","first_seen":"2025-06-15T15:06:40Z"}`)); err == nil {
		t.Error("Import with a canceled context succeeded")
	}
}
