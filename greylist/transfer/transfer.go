// Package transfer moves a greylist between stores (a bbolt file to a
// shared Redis, or back) without greylisting its known senders again:
// Export writes every record as a JSON line, an Entry as `mxfront
// greylist list --json` prints it; Import reads those lines (or list
// --json's array) into any store. It is apart from package greylist so
// that chain mode, which links greylist, does not link encoding/json.
package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// Export writes every record of the store as one JSON object a line
// ({"network":…,"first_seen":…,"last_pass":…,"status":…}, times in UTC) and
// returns how many it wrote. It reads the store as List does: records that
// change meanwhile may be seen either way.
func Export(ctx context.Context, p *greylist.Policy, w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	n := 0
	err := p.List(ctx, func(e greylist.Entry) error {
		e.FirstSeen, e.LastPass = e.FirstSeen.UTC(), e.LastPass.UTC()
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Import reads records as Export writes them (JSON lines; the JSON array of
// `list --json` too) and writes each one the store has no record of. A
// record the store has is kept: it is the live one. The status of each
// entry is not read but judged again by the policy now: stale records are
// left out, so that a store with TTLs does not keep dead ones alive.
//
// It stops at the first entry that does not read (the error names it) or
// the first store error; what was written before stays.
func Import(ctx context.Context, p *greylist.Policy, r io.Reader) (greylist.Imported, error) {
	var im greylist.Imported
	br := bufio.NewReader(r)
	dec := json.NewDecoder(br)
	array, err := startsArray(br)
	if err != nil {
		return im, fmt.Errorf("greylist: import: %w", err)
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return im, fmt.Errorf("greylist: import: %w", err)
		}
	}
	for i := 1; ; i++ {
		if err := ctx.Err(); err != nil {
			return im, err
		}
		if array && !dec.More() {
			if _, err := dec.Token(); err != nil {
				return im, fmt.Errorf("greylist: import: after entry %d: %w", i-1, err)
			}
			if _, err := dec.Token(); err != io.EOF {
				return im, fmt.Errorf("greylist: import: after the array: more than one array")
			}
			return im, nil
		}
		n, rec, err := decodeEntry(dec)
		if err == io.EOF && !array {
			return im, nil
		}
		if err != nil {
			return im, fmt.Errorf("greylist: import: entry %d: %w", i, err)
		}
		if err := p.ImportRecord(ctx, n, rec, &im); err != nil {
			return im, err
		}
	}
}

// startsArray reports whether the input's first character other than
// white space opens a JSON array.
func startsArray(br *bufio.Reader) (bool, error) {
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.ReadByte()
			continue
		}
		return b[0] == '[', nil
	}
}

// importEntry is what Import reads of an Entry; the status is judged anew.
type importEntry struct {
	Network   *netip.Prefix `json:"network"`
	FirstSeen time.Time     `json:"first_seen"`
	LastPass  time.Time     `json:"last_pass"`
}

// decodeEntry reads one entry: a masked network and a first-seen time,
// both required; times are kept to the second, as stores keep them.
func decodeEntry(dec *json.Decoder) (netip.Prefix, greylist.Record, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return netip.Prefix{}, greylist.Record{}, err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return netip.Prefix{}, greylist.Record{}, fmt.Errorf("%.40s: not a JSON object", raw)
	}
	var e importEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return netip.Prefix{}, greylist.Record{}, fmt.Errorf("%.80s: %w", raw, err)
	}
	switch {
	case e.Network == nil || !e.Network.IsValid():
		return netip.Prefix{}, greylist.Record{}, fmt.Errorf("%.80s: no network", raw)
	case *e.Network != e.Network.Masked():
		return netip.Prefix{}, greylist.Record{}, fmt.Errorf("network %v: not a network address (%v)", e.Network, e.Network.Masked())
	case e.FirstSeen.IsZero():
		return netip.Prefix{}, greylist.Record{}, fmt.Errorf("network %v: no first_seen", e.Network)
	}
	r := greylist.Record{FirstSeen: time.Unix(e.FirstSeen.Unix(), 0)}
	if !e.LastPass.IsZero() {
		r.LastPass = time.Unix(e.LastPass.Unix(), 0)
	}
	return *e.Network, r, nil
}
