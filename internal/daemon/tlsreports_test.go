package daemon

import "testing"

func TestSubmitterDomain(t *testing.T) {
	for _, tc := range []struct {
		host    string
		domains []string
		want    string
	}{
		{"mx.example.org", []string{"other.test", "example.org", "mx.example.org.test"}, "example.org"},
		{"MX.Sub.Example.org", []string{"example.org", "sub.example.org"}, "sub.example.org"},
		{"example.org", []string{"example.org"}, "example.org"},
		{"mx.host.test", []string{"example.org", "xhost.test"}, "mx.host.test"},
	} {
		if got := submitterDomain(tc.host, tc.domains); got != tc.want {
			t.Errorf("submitterDomain(%q, %q) = %q, want %q", tc.host, tc.domains, got, tc.want)
		}
	}
}
