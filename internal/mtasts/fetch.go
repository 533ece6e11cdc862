package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"time"
)

// Limits of one fetch (RFC 8461 3.3 suggests both).
const (
	FetchTimeout = time.Minute
	MaxPolicy    = 64 << 10
)

// AddrsFunc resolves a host name: facteur's own resolver, never the system's,
// so that tests and operators point every question at one server.
type AddrsFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// NewClient returns the HTTP client that fetches policies: it resolves with
// addrs, trusts roots (nil: the system pool, which honours SSL_CERT_FILE),
// follows no redirect (RFC 8461 3.3) and uses no proxy.
func NewClient(addrs AddrsFunc, roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	return &http.Client{
		Timeout: FetchTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(hostport)
				if err != nil {
					return nil, err
				}
				ips, err := addrs(ctx, host)
				if err != nil {
					return nil, err
				}
				if len(ips) == 0 {
					return nil, fmt.Errorf("%s has no address", host)
				}
				var errs []error
				for _, ip := range ips {
					c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
					if err == nil {
						return c, nil
					}
					errs = append(errs, err)
				}
				return nil, errors.Join(errs...)
			},
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 30 * time.Second,
			MaxIdleConns:        1,
			IdleConnTimeout:     time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL is where domain serves its policy.
func URL(domain string) string {
	return "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
}

// Fetch gets and parses domain's policy with client (see NewClient).
func Fetch(ctx context.Context, client *http.Client, domain string) (*Policy, error) {
	url := URL(domain)
	p, err := fetch(ctx, client, url)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	return p, nil
}

func fetch(ctx context.Context, client *http.Client, url string) (*Policy, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if urlErr := (*neturl.Error)(nil); errors.As(err, &urlErr) {
		err = urlErr.Err // without the method and URL Fetch says
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("Content-Type %q, not text/plain", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicy+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxPolicy {
		return nil, fmt.Errorf("policy larger than %d bytes", MaxPolicy)
	}
	p, err := Parse(string(body))
	if err != nil {
		return nil, &InvalidError{err}
	}
	return p, nil
}

// InvalidError is a policy that was fetched but does not parse: TLS reports
// tell it from a failed fetch (RFC 8460 4.3.2, sts-policy-invalid).
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "invalid MTA-STS policy: " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }
