package dnsbl

import (
	"context"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestMailDomain(t *testing.T) {
	addr := testpeer.ZoneDNS(t,
		"mx.example. 300 IN MX 10 mail.mx.example.",
		"mx.example. 300 IN MX 20 backup.example.net.",
		"a.example. 300 IN A 192.0.2.1",
		"aaaa.example. 300 IN AAAA 2001:db8::1",
		"null.example. 300 IN MX 0 .",
		"null.example. 300 IN A 192.0.2.2",
		"nodata.example. 300 IN TXT \"v=spf1 -all\"",
		"alias.example. 300 IN CNAME mx.example.",
	)
	for _, poller := range []bool{false, true} {
		r, err := NewResolver([]string{addr}, 5*time.Second, poller)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			domain                   string
			exists, null, nx, unsure bool
		}{
			{domain: "mx.example", exists: true},
			{domain: "MX.Example.", exists: true},
			{domain: "a.example", exists: true},
			{domain: "aaaa.example", exists: true},
			{domain: "null.example", null: true},
			{domain: "nodata.example"},
			{domain: "nowhere.example", nx: true},
			{domain: "alias.example", exists: true},
			{domain: "x.servfail", unsure: true},
			{domain: "bad..name", unsure: true},
		} {
			md := r.MailDomain(context.Background(), tc.domain)
			if md.Exists != tc.exists || md.NullMX != tc.null || md.NXDomain != tc.nx || (md.Err != nil) != tc.unsure {
				t.Errorf("poller=%v %s: %+v (err %v)", poller, tc.domain, md, md.Err)
			}
		}
		md := r.MailDomain(context.Background(), "mx.example")
		if len(md.MX) != 2 || md.MX[0] != (MX{10, "mail.mx.example."}) || md.MX[1] != (MX{20, "backup.example.net."}) {
			t.Errorf("MX records: %+v", md.MX)
		}
	}
}

// A server that never answers: unsure within the deadline, a timeout.
func TestMailDomainTimeout(t *testing.T) {
	addr := testpeer.ZoneDNS(t)
	r, err := NewResolver([]string{addr}, 300*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	md := r.MailDomain(context.Background(), "x.silent")
	if md.Err == nil || md.Err.Cause != Timeout || md.Exists || md.NXDomain {
		t.Fatalf("%+v (err %v)", md, md.Err)
	}
}
