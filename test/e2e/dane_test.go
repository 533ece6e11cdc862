package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"facteur/internal/smtptest"
)

// newDANEWorld is remote.test with one MX host, mx1.remote.test on
// 127.0.0.2, in a zone the fake DNS says is signed (AD bit) unless told
// otherwise.
func newDANEWorld(t *testing.T, outbound string) *relayWorld {
	t.Helper()
	w := newRelayWorld(t, outbound)
	w.dns.MX("remote.test", 10, "mx1.remote.test")
	w.dns.A("mx1.remote.test", "127.0.0.2")
	w.dns.SecureAll(true)
	return w
}

// tlsa publishes the TLSA record of usage, selector and matching type for
// the certificate in certPEM, computed by miekg/dns.
func (w *relayWorld) tlsa(usage, selector, matching int, certPEM []byte) {
	w.t.Helper()
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		w.t.Fatal(err)
	}
	data, err := dns.CertificateToDANE(uint8(selector), uint8(matching), cert)
	if err != nil {
		w.t.Fatal(err)
	}
	w.dns.RR(fmt.Sprintf("_25._tcp.mx1.remote.test. IN TLSA %d %d %d %s", usage, selector, matching, data))
}

// delivered sends one message and waits for mx to take it over TLS, with
// the delivery logged under the policy want.
func (w *relayWorld) delivered(mx *smtptest.MX, want string) {
	w.t.Helper()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		w.t.Fatal(err)
	}
	mx.Wait(w.t, 1, 20*time.Second)
	if !mx.Messages()[0].TLS {
		w.t.Error("delivered in plaintext")
	}
	waitLog(w.t, w.instance, "tls="+want)
}

// refused sends one message and waits for the queue to show it deferred
// by DANE with reason in the text; mx must have taken nothing.
func (w *relayWorld) refused(mx *smtptest.MX, reason string) {
	w.t.Helper()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		w.t.Fatal(err)
	}
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "dane: ") }, "deferred by DANE")
	if !strings.Contains(out, reason) {
		w.t.Errorf("queue list gives no %q:\n%s", reason, out)
	}
	// Give a wrong fallback the time of a retry (min_backoff 1s).
	time.Sleep(1500 * time.Millisecond)
	if mx.Count() != 0 {
		w.t.Errorf("the MX got %d messages in spite of DANE", mx.Count())
	}
}

func TestDANE(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.remote.test")
	stranger := smtptest.NewCA(t, "mx1.remote.test") // same name, another key and CA

	t.Run("DANE-EE 3 1 1 matching: delivered over TLS", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.tlsa(3, 1, 1, ca.CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		w.delivered(mx, "dane")
	})
	t.Run("DANE-EE mismatching: queued, never in plaintext nor to that server", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.tlsa(3, 1, 1, stranger.CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		w.refused(mx, "no TLSA record of _25._tcp.mx1.remote.test matches")
	})
	t.Run("STARTTLS stripped: queued, not sent in plaintext", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.tlsa(3, 1, 1, ca.CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{})
		w.start()
		w.refused(mx, "STARTTLS")
	})
	t.Run("DANE-TA 2 0 1 of the issuing CA: delivered", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.tlsa(2, 0, 1, ca.CAPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ChainTLS()})
		w.start()
		w.delivered(mx, "dane")
	})
	t.Run("DANE-TA with a certificate for another name: queued", func(t *testing.T) {
		other := smtptest.NewCA(t, "mx9.elsewhere.test")
		w := newDANEWorld(t, "")
		w.tlsa(2, 1, 1, other.CAPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: other.ChainTLS()})
		w.start()
		w.refused(mx, "not mx1.remote.test")
	})
	t.Run("records without the AD bit: no DANE, opportunistic TLS", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.dns.SecureAll(false)
		w.tlsa(3, 1, 1, stranger.CertPEM) // would refuse the server under DANE
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		w.delivered(mx, "opportunistic")
	})
	t.Run("MX not signed: no DANE for its host", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.dns.Secure("remote.test", false)
		w.tlsa(3, 1, 1, stranger.CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		w.delivered(mx, "opportunistic")
	})
	t.Run("TLSA lookup fails: queued, not delivered", func(t *testing.T) {
		w := newDANEWorld(t, "")
		w.dns.ServFail("_25._tcp.mx1.remote.test")
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
		w.start()
		w.refused(mx, "TLSA lookup failed")
	})
}

// With dane = false, TLSA records are not even asked for.
// DANE takes precedence over MTA-STS for a host with secure TLSA records
// (RFC 8461 2), both ways: a certificate only DANE vouches for is accepted
// under an enforced policy, and one MTA-STS would accept is refused when
// it does not match the TLSA record.
func TestDANEOverMTASTS(t *testing.T) {
	t.Run("certificate outside the WebPKI, pinned by TLSA: delivered under DANE", func(t *testing.T) {
		w := newSTSWorld(t, "127.84.2.1", "enforce", "")
		w.dns.SecureAll(true)
		pinned := smtptest.NewCA(t, "mx1.remote.test") // a CA facteur does not trust
		w.tlsa(3, 1, 1, pinned.CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: pinned.ServerTLS()})
		w.start()
		w.delivered(mx, "dane")
	})
	t.Run("certificate valid for MTA-STS, not matching TLSA: queued", func(t *testing.T) {
		w := newSTSWorld(t, "127.84.2.2", "enforce", "")
		w.dns.SecureAll(true)
		w.tlsa(3, 1, 1, smtptest.NewCA(t, "mx1.remote.test").CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
		w.start()
		w.refused(mx, "no TLSA record")
	})
	t.Run("control: the same without AD is MTA-STS's to judge", func(t *testing.T) {
		w := newSTSWorld(t, "127.84.2.3", "enforce", "")
		w.tlsa(3, 1, 1, smtptest.NewCA(t, "mx1.remote.test").CertPEM)
		mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
		w.start()
		w.delivered(mx, "mta-sts")
	})
}

func TestDANEOff(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.remote.test")
	w := newDANEWorld(t, "dane = false\n")
	w.tlsa(3, 1, 1, smtptest.NewCA(t, "mx1.remote.test").CertPEM)
	mx := w.mx("127.0.0.2", smtptest.MXOptions{TLS: ca.ServerTLS()})
	w.start()
	w.delivered(mx, "opportunistic")
	if n := w.dns.Queries("_25._tcp.mx1.remote.test"); n != 0 {
		t.Errorf("%d TLSA queries with dane = false", n)
	}
}

// A resolver off loopback is not believed about DNSSEC: DANE is off, and the
// log says so once at start, unless the operator vouches for the path.
func TestDANEWantsTrustedResolver(t *testing.T) {
	in := setup(t, "dns = \"192.0.2.1:53\"\n")
	in.start()
	waitLog(t, in, "DANE is off")
	if n := strings.Count(in.out.String(), "DANE is off"); n != 1 {
		t.Errorf("said %d times", n)
	}

	in = setup(t, "dns = \"192.0.2.1:53\"\n[outbound]\ndnssec_trusted = true\n")
	in.start()
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(in.out.String(), "DANE is off") {
		t.Errorf("DANE off in spite of dnssec_trusted:\n%s", in.out.String())
	}
}
