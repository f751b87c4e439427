package config

import (
	"strings"
	"testing"
)

func TestDNSServers(t *testing.T) {
	got, err := dnsServers([]string{"127.0.0.1", "::1", "[::1]:5353", "[fe80::1%eth0]:53"})
	if err != nil || strings.Join(got, " ") != "127.0.0.1:53 [::1]:53 [::1]:5353 [fe80::1%eth0]:53" {
		t.Fatalf("a bare IP server is port 53: %q %v", got, err)
	}
	for _, bad := range []string{"resolver.example:53", "127.0.0.1:99999", "127.0.0.1:", "", "[127.0.0.1]:53"} {
		if _, err := dnsServers([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
