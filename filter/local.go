package filter

import (
	"errors"
	"strings"

	"github.com/mxfront/mxfront/internal/recipients"
)

// CheckLocalAddresses is the local-addresses check
// (--local-header-addresses): an address of From, Sender or Reply-To
// whose domain is one of the site's local domains must be a valid
// recipient of the site, by the same sources the inspecting relay asks
// at RCPT (package recipients). A message that claims to come from a
// mailbox of ours that does not exist is forged.
const CheckLocalAddresses = "local-addresses"

// LocalAddresses is what the check asks.
type LocalAddresses struct {
	Domains    *recipients.Domains
	Recipients *recipients.Set
}

// localAddresses judges the header's local addresses.
func (j *judge) localAddresses(st *Structure) (*finding, string, error) {
	la := j.cfg.LocalAddresses
	var unsureErrs []string
	for _, addr := range headerAddresses(st.Header, "From", "Sender", "Reply-To") {
		d := recipients.Domain(recipients.Normal(addr))
		if d == "" || !la.Domains.Contains(d) {
			continue
		}
		r := la.Recipients.Check(j.ctx, recipients.Query{Recipient: addr, Sender: j.msg.Env.Sender, RemoteIP: j.remote})
		switch r.Verdict {
		case recipients.Invalid:
			return policy("header address " + Sanitize(addr, 100) + " is not a mailbox of this site"), "", nil
		case recipients.Defer:
			unsureErrs = append(unsureErrs, Sanitize(addr, 100)+": "+r.Source+" said to try later")
		case recipients.Unsure:
			unsureErrs = append(unsureErrs, Sanitize(addr, 100)+": "+r.Err.Error())
		}
	}
	if len(unsureErrs) > 0 {
		return nil, "", &unsure{errors.New(strings.Join(unsureErrs, "; "))}
	}
	return nil, "", nil
}

// headerAddresses returns the addresses of the named header fields, each
// once (ignoring case), in order.
func headerAddresses(h Header, fields ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range fields {
		for _, f := range h {
			if !strings.EqualFold(f.Name, name) {
				continue
			}
			list, _, err := parseAddressList(f.Value)
			if err != nil {
				continue
			}
			for _, a := range list {
				if k := strings.ToLower(a); !seen[k] {
					seen[k] = true
					out = append(out, a)
				}
			}
		}
	}
	return out
}
