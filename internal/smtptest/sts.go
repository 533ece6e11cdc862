package smtptest

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// STSServer is the web server of mta-sts.<domain>: it serves an MTA-STS
// policy (RFC 8461 3.3) over HTTPS on port 443 of one loopback address, as
// senders look for it. Binding port 443 needs root, as the tests have in CI;
// without it the test is skipped. Each test takes an address of its own
// (127.x.y.z) so that tests do not collide.
type STSServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	policy   string
	ctype    string
	status   int
	redirect string
	requests int
}

// NewSTSServer serves policy at https://<ip>/.well-known/mta-sts.txt with
// the certificate of cfg, until t ends.
func NewSTSServer(t testing.TB, ip string, cfg *tls.Config, policy string) *STSServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "443"))
	if err != nil {
		t.Skipf("smtptest: cannot listen on port 443 of %s (root is needed): %v", ip, err)
	}
	s := &STSServer{policy: policy, ctype: "text/plain; charset=utf-8", status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.TLS = cfg
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *STSServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	switch {
	case r.URL.Path != "/.well-known/mta-sts.txt":
		http.NotFound(w, r)
	case s.redirect != "":
		http.Redirect(w, r, s.redirect, http.StatusFound)
	default:
		w.Header().Set("Content-Type", s.ctype)
		w.WriteHeader(s.status)
		w.Write([]byte(s.policy))
	}
}

// Policy changes the policy served.
func (s *STSServer) Policy(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = text
}

// Status makes the server answer with an HTTP status: 200 serves the policy.
func (s *STSServer) Status(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// ContentType changes the Content-Type of the policy.
func (s *STSServer) ContentType(ct string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctype = ct
}

// Redirect makes the server redirect to url; "" serves the policy again.
func (s *STSServer) Redirect(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirect = url
}

// Requests counts the requests served.
func (s *STSServer) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Stop closes the server: fetches are refused.
func (s *STSServer) Stop() { s.srv.Close() }
