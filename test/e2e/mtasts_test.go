package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"facteur/internal/smtptest"
)

// stsWorld is a relayWorld where remote.test, whose MX is mx1.remote.test
// (127.0.0.2), publishes an MTA-STS policy,
// served at https://mta-sts.remote.test on ip:443. facteur trusts two
// throwaway CAs through SSL_CERT_FILE: ca, which signed the certificates of
// the policy server and of mx1 and mx2.remote.test, and other, which signed
// one for other.test (a certificate that chains but names another host).
type stsWorld struct {
	*relayWorld
	ca, other *smtptest.CA
	sts       *smtptest.STSServer
}

func newSTSWorld(t *testing.T, ip, mode, outbound string) *stsWorld {
	t.Helper()
	w := &stsWorld{
		relayWorld: newRelayWorld(t, outbound),
		ca:         smtptest.NewCA(t, "mx1.remote.test", "mx2.remote.test", "mta-sts.remote.test"),
		other:      smtptest.NewCA(t, "other.test"),
	}
	w.writeFile("roots.pem", string(w.ca.CAPEM)+string(w.other.CAPEM))
	t.Setenv("SSL_CERT_FILE", filepath.Join(w.dir, "roots.pem"))
	w.sts = smtptest.NewSTSServer(t, ip, w.ca.ServerTLS(), stsPolicy(mode, "*.remote.test"))
	w.dns.A("mta-sts.remote.test", ip)
	w.announce("20261202a")
	w.dns.MX("remote.test", 10, "mx1.remote.test")
	w.dns.A("mx1.remote.test", "127.0.0.2")
	return w
}

// addMX2 makes mx2.remote.test (127.0.0.3) the second MX of remote.test.
func (w *stsWorld) addMX2() {
	w.dns.MX("remote.test", 20, "mx2.remote.test")
	w.dns.A("mx2.remote.test", "127.0.0.3")
}

func stsPolicy(mode, mx string) string {
	return "version: STSv1\r\nmode: " + mode + "\r\nmx: " + mx + "\r\nmax_age: 86400\r\n"
}

// announce publishes the TXT record of the policy with id.
func (w *stsWorld) announce(id string) {
	w.dns.Remove("_mta-sts.remote.test", 16) // TXT
	w.dns.TXT("_mta-sts.remote.test", "v=STSv1; id="+id+";")
}

func (w *stsWorld) send() {
	w.t.Helper()
	if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
		w.t.Fatal(err)
	}
}

// restart stops facteur and starts it again on the same spool and cache.
func (w *stsWorld) restart() {
	w.t.Helper()
	w.stop(syscall.SIGTERM)
	w.start()
}

func TestMTASTSEnforceDeliversOverVerifiedTLS(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.1", "enforce", "")
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	w.start()
	w.send()
	mx1.Wait(t, 1, 20*time.Second)
	if !mx1.Messages()[0].TLS {
		t.Error("delivered in plaintext under an enforce policy")
	}
	waitLog(t, w.instance, "tls=mta-sts")
	w.waitQueue(emptyQueue, "empty")
}

func TestMTASTSEnforceSkipsMXNotInPolicy(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.2", "enforce", "")
	w.sts.Policy(stsPolicy("enforce", "mx2.remote.test"))
	w.addMX2()
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	mx2 := w.mx("127.0.0.3", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	w.start()
	w.send()
	mx2.Wait(t, 1, 20*time.Second)
	if mx1.Connections() != 0 {
		t.Errorf("mx1.remote.test, which the policy does not name, was connected to %d times", mx1.Connections())
	}
	waitLog(t, w.instance, "MX host mx1.remote.test does not match the policy (mx: mx2.remote.test)")
}

func TestMTASTSEnforceRefusesCertificateForAnotherName(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.3", "enforce", "lifetime = \"6s\"\n")
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.other.ServerTLS()})
	w.start()
	w.send()
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "mta-sts enforce") }, "deferred by the policy")
	if !strings.Contains(out, "certificate is valid for other.test, not mx1.remote.test") {
		t.Errorf("queue list does not say why:\n%s", out)
	}
	// Expiry bounces with the reason; nothing ever went in plaintext.
	b := w.waitMail("alice", 1)[0]
	for _, want := range []string{"Final-Recipient: rfc822; bob@remote.test", "mta-sts enforce: mx1.remote.test", "not mx1.remote.test"} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if mx1.Count() != 0 {
		t.Errorf("mx1 took %d messages with a certificate for another name", mx1.Count())
	}
}

func TestMTASTSEnforceRefusesStrippedSTARTTLS(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.4", "enforce", "")
	w.addMX2()
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{}) // no STARTTLS, as if stripped on the path
	mx2 := w.mx("127.0.0.3", smtptest.MXOptions{})
	w.start()
	w.send()
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "mta-sts enforce") }, "deferred by the policy")
	if !strings.Contains(out, "STARTTLS not offered") {
		t.Errorf("queue list does not say why:\n%s", out)
	}
	if n := mx1.Count() + mx2.Count(); n != 0 {
		t.Errorf("%d messages sent in plaintext under an enforce policy", n)
	}
}

func TestMTASTSTestingDeliversAndReports(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.5", "testing", "tls_reports = true\n")
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.other.ServerTLS()})
	w.start()
	w.send()
	mx1.Wait(t, 1, 20*time.Second)
	if !mx1.Messages()[0].TLS {
		t.Error("testing mode gave up STARTTLS")
	}
	waitLog(t, w.instance, "mta-sts testing: the policy in enforce mode would refuse this delivery")
	waitLog(t, w.instance, "not mx1.remote.test")
	w.tlsCounts(`"Type":"sts"`, `"result_type":"certificate-host-mismatch"`)
}

// tlsCounts stops facteur, which writes its TLS report counts, and checks
// that they hold each of want.
func (w *stsWorld) tlsCounts(want ...string) {
	w.t.Helper()
	w.stop(syscall.SIGTERM)
	ents, err := os.ReadDir(filepath.Join(w.dir, "var", "tls-reports"))
	if err != nil || len(ents) == 0 {
		w.t.Fatalf("no TLS report counts: %v %v", ents, err)
	}
	counts := readFile(w.t, filepath.Join(w.dir, "var", "tls-reports", ents[0].Name()))
	for _, s := range want {
		if !strings.Contains(counts, s) {
			w.t.Errorf("TLS report counts lack %s:\n%s", s, counts)
		}
	}
}

// The policy outlives a failed fetch: after a restart with a new id and the
// policy server down, a certificate for another name is still refused.
func TestMTASTSCachedPolicyOutlivesFetchFailure(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.6", "enforce", "")
	good := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	w.start()
	w.send()
	good.Wait(t, 1, 20*time.Second)
	w.stop(syscall.SIGTERM)
	good.Stop()
	w.sts.Stop()
	w.announce("20261202b")
	bad := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.other.ServerTLS()})
	w.start()
	w.send()
	out := w.waitQueue(func(s string) bool { return strings.Contains(s, "mta-sts enforce") }, "deferred by the cached policy")
	if !strings.Contains(out, "not mx1.remote.test") || bad.Count() != 0 {
		t.Errorf("bad certificate took %d messages; queue list:\n%s", bad.Count(), out)
	}
	waitLog(t, w.instance, "applying the cached policy")
}

// The policy is fetched once, then again only when the TXT id changes.
func TestMTASTSRefetchesOnNewID(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.7", "enforce", "")
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	w.start()
	for i := range 3 {
		w.send()
		mx1.Wait(t, i+1, 20*time.Second)
	}
	if n := w.sts.Requests(); n != 1 {
		t.Errorf("%d policy fetches for 3 messages, want 1", n)
	}
	w.restart()
	w.send()
	mx1.Wait(t, 4, 20*time.Second)
	if n := w.sts.Requests(); n != 1 {
		t.Errorf("%d policy fetches after a restart with the same id, want 1 (the cache on disk)", n)
	}
	// A new id, and a policy that no longer names mx1: fetched, applied.
	w.stop(syscall.SIGTERM)
	w.announce("20261202b")
	w.sts.Policy(stsPolicy("enforce", "mx2.remote.test"))
	w.addMX2()
	mx2 := w.mx("127.0.0.3", smtptest.MXOptions{TLS: w.ca.ServerTLS()})
	w.start()
	w.send()
	mx2.Wait(t, 1, 20*time.Second)
	if n := w.sts.Requests(); n != 2 || mx1.Count() != 4 {
		t.Errorf("new id: %d fetches, mx1 took %d; want 2 and 4", n, mx1.Count())
	}
}

// A policy server that fails without a cached policy: mail goes as without
// MTA-STS, and the failure is logged and counted for the TLS report.
func TestMTASTSFetchFailureWithoutCache(t *testing.T) {
	w := newSTSWorld(t, "127.84.0.8", "enforce", "tls_reports = true\n")
	w.sts.Status(http.StatusInternalServerError)
	mx1 := w.mx("127.0.0.2", smtptest.MXOptions{TLS: w.other.ServerTLS()})
	w.start()
	w.send()
	mx1.Wait(t, 1, 20*time.Second)
	waitLog(t, w.instance, "mta-sts: policy fetch failed")
	w.tlsCounts(`"Type":"sts"`, `"result_type":"sts-policy-fetch-error"`)
}
