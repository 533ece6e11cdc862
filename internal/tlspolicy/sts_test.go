package tlspolicy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"facteur/internal/mtasts"
	"facteur/internal/remote"
	"facteur/internal/smtptest"
	"facteur/internal/tlsrpt"
)

func policy(t *testing.T, text string) *mtasts.Policy {
	t.Helper()
	p, err := mtasts.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stsOf is the STS of one fixed Get result.
func stsOf(r mtasts.Result, roots *x509.CertPool) func(context.Context, string) func(string) remote.HostTLS {
	return STS(func(context.Context, string) mtasts.Result { return r }, remote.Opportunistic, roots, slog.New(slog.DiscardHandler))
}

func TestSTSEnforce(t *testing.T) {
	p := policy(t, "version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 86400\n")
	ofHost := stsOf(mtasts.Result{Policy: p}, nil)(context.Background(), "example.net")
	good := ofHost("mx1.example.net")
	if good.Mode != remote.Verify || good.Name != "mta-sts" || good.Why != "mta-sts enforce" || good.Refuse != nil {
		t.Errorf("matching host: %+v", good)
	}
	if r := good.Report; r.Type != tlsrpt.PolicySTS || r.Domain != "example.net" || !slices.Equal(r.MXHosts, []string{"*.example.net"}) || len(r.Strings) != 4 {
		t.Errorf("report: %+v", r)
	}
	bad := ofHost("mx.evil.test")
	if bad.Refuse == nil || bad.Refuse.Error() != "MX host mx.evil.test does not match the policy (mx: *.example.net)" {
		t.Errorf("host not in the policy: %+v", bad)
	}
}

func TestSTSTesting(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.example.net")
	block, _ := pem.Decode(ca.CertPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	p := policy(t, "version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 86400\n")
	ofHost := stsOf(mtasts.Result{Policy: p}, ca.Pool())(context.Background(), "example.net")
	ht := ofHost("mx1.example.net")
	if ht.Mode != remote.Opportunistic || ht.Refuse != nil || ht.Audit == nil || ht.Report.Type != tlsrpt.PolicySTS {
		t.Fatalf("testing: %+v, want the default mode with an audit", ht)
	}
	if err := ht.Audit("mx1.example.net", cs); err != nil {
		t.Errorf("good certificate: %v", err)
	}
	if err := ht.Audit("mx2.example.net", cs); !errors.As(err, new(x509.HostnameError)) {
		t.Errorf("certificate for another host: %v", err)
	}
	if err := ofHost("mx.evil.test").Audit("mx.evil.test", cs); err == nil || !strings.Contains(err.Error(), "does not match the policy") {
		t.Errorf("host not in the policy: %v", err)
	}
	untrusted := stsOf(mtasts.Result{Policy: p}, x509.NewCertPool())(context.Background(), "example.net")
	if err := untrusted("mx1.example.net").Audit("mx1.example.net", cs); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("untrusted certificate: %v", err)
	}
}

func TestSTSNoneAndFailures(t *testing.T) {
	none := policy(t, "version: STSv1\nmode: none\nmax_age: 86400\n")
	for _, r := range []mtasts.Result{{}, {Policy: none}} {
		if f := stsOf(r, nil)(context.Background(), "example.net"); f != nil {
			t.Errorf("%+v: a policy applies", r)
		}
	}
	for err, want := range map[error]string{
		errors.New("connection refused"):                                                              tlsrpt.STSPolicyFetchError,
		&mtasts.InvalidError{Err: fmt.Errorf("no mx")}:                                                tlsrpt.STSPolicyInvalid,
		fmt.Errorf("fetch: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}): tlsrpt.STSWebPKIInvalid,
	} {
		ht := stsOf(mtasts.Result{Err: err}, nil)(context.Background(), "example.net")("mx.example.net")
		if ht.Mode != remote.Opportunistic || ht.Refuse != nil || ht.Report.Type != tlsrpt.PolicySTS || ht.Audit == nil {
			t.Fatalf("%v: %+v", err, ht)
		}
		if got := tlsrpt.TypeOf(ht.Audit("mx.example.net", tls.ConnectionState{})); got != want {
			t.Errorf("%v: reported as %q, want %q", err, got, want)
		}
	}
}
