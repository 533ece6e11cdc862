package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"facteur/internal/resolver"
	"facteur/internal/smtptest"
)

// world is a loopback DNS serving a few sender domains, each allowing
// 127.0.0.1 by SPF and holding a DKIM key:
//
//	reject.test      DMARC p=reject
//	quarantine.test  DMARC p=quarantine
//	none.test        DMARC p=none
//	nodmarc.test     no DMARC record
//	strict.test      DMARC p=reject, strict alignment of both
//	org.test         DMARC p=none; sp=reject (for its subdomains)
type world struct {
	dns *smtptest.DNSServer
	c   *Checker
	key ed25519.PrivateKey
}

var good = netip.MustParseAddr("127.0.0.1")
var bad = netip.MustParseAddr("127.0.0.9")

func newWorld(t *testing.T) *world {
	t.Helper()
	dns := smtptest.NewDNS(t)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	policies := map[string]string{
		"reject.test":     "v=DMARC1; p=reject",
		"quarantine.test": "v=DMARC1; p=quarantine",
		"none.test":       "v=DMARC1; p=none",
		"nodmarc.test":    "",
		"strict.test":     "v=DMARC1; p=reject; adkim=s; aspf=s",
		"org.test":        "v=DMARC1; p=none; sp=reject",
	}
	for d, p := range policies {
		dns.TXT(d, "v=spf1 ip4:127.0.0.1 -all")
		dns.TXT("s1._domainkey."+d, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
		if p != "" {
			dns.TXT("_dmarc."+d, p)
		}
	}
	dns.TXT("mail.strict.test", "v=spf1 ip4:127.0.0.1 -all")
	dns.TXT("s1._domainkey.mail.strict.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	r, err := resolver.New(dns.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &world{dns: dns, c: New(r, "mx.example.test"), key: key}
}

// message is a plain message from the address from.
func message(from string) string {
	return "From: " + from + "\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
}

// sign returns msg with a DKIM signature of domain.
func (w *world) sign(t *testing.T, domain, msg string) string {
	t.Helper()
	var b strings.Builder
	if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: w.key}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// check runs every check on msg as the session would, and returns the
// verdict and the message as it would be stored.
func (w *world) check(t *testing.T, ip netip.Addr, mailFrom, msg string, mode Mode) (*Verdict, string) {
	t.Helper()
	ctx := context.Background()
	spf := w.c.SPF(ctx, ip, "client.example", mailFrom)
	m := w.c.Message(ctx, strings.NewReader(msg))
	defer m.Close()
	stored, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	return m.Verdict(spf, mode != Off), string(stored)
}

func TestVerdicts(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name     string
		ip       netip.Addr
		mailFrom string
		msg      string
		spf      Result
		dkim     Result // of the first signature; "" for none
		dmarc    Result
		action   Action
	}{
		{"aligned pass", good, "a@reject.test", w.sign(t, "reject.test", message("a@reject.test")),
			Pass, Pass, Pass, Inbox},
		{"forged p=reject", bad, "a@reject.test", message("a@reject.test"),
			Fail, "", Fail, Reject},
		{"forged From only, own envelope", good, "a@none.test", message("ceo@reject.test"),
			Pass, "", Fail, Reject},
		{"forged p=quarantine", bad, "a@quarantine.test", message("a@quarantine.test"),
			Fail, "", Fail, Junk},
		{"forged p=none", bad, "a@none.test", message("a@none.test"),
			Fail, "", Fail, Inbox},
		{"body changed by one byte", good, "a@none.test",
			strings.Replace(w.sign(t, "none.test", message("a@none.test")), "Hello.", "Hellp.", 1),
			Pass, Fail, Pass, Inbox},
		{"forwarded: SPF fails, aligned DKIM passes", bad, "list@nodmarc.test",
			w.sign(t, "reject.test", message("a@reject.test")),
			Fail, Pass, Pass, Inbox},
		{"SPF fail without DMARC", bad, "a@nodmarc.test", message("a@nodmarc.test"),
			Fail, "", None, RejectSPF},
		{"SPF softfail without DMARC", bad, "a@unknown.test", message("a@unknown.test"),
			None, "", None, Inbox},
		{"null sender: HELO checked", good, "", message("a@none.test"),
			None, "", Fail, Inbox},
		{"strict: subdomain DKIM does not align", good, "a@mail.strict.test",
			w.sign(t, "mail.strict.test", message("a@strict.test")),
			Pass, Pass, Fail, Reject},
		{"relaxed: subdomain DKIM aligns", bad, "x@nodmarc.test",
			w.sign(t, "mail.strict.test", message("a@mail.strict.test")),
			Fail, Pass, Pass, Inbox},
		{"subdomain uses sp= of its organization", bad, "a@sub.org.test", message("a@sub.org.test"),
			None, "", Fail, Reject},
		{"no From", good, "a@none.test", "To: alice@example.test\r\n\r\nHi\r\n",
			Pass, "", "", RejectFrom},
		{"From of two domains", good, "a@none.test", message("a@none.test, b@reject.test"),
			Pass, "", "", RejectFrom},
		{"two From fields", good, "a@none.test", "From: a@none.test\r\n" + message("a@none.test"),
			Pass, "", "", RejectFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := w.check(t, tc.ip, tc.mailFrom, tc.msg, Enforce)
			if v.SPF.Result != tc.spf {
				t.Errorf("spf = %s, want %s (%s)", v.SPF.Result, tc.spf, v.SPF.Reason)
			}
			switch {
			case tc.dkim == "" && len(v.DKIM) != 0:
				t.Errorf("dkim = %v, want no signature", v.DKIM)
			case tc.dkim != "" && (len(v.DKIM) != 1 || v.DKIM[0].Result != tc.dkim):
				t.Errorf("dkim = %v, want %s", v.DKIM, tc.dkim)
			}
			if v.DMARC.Result != tc.dmarc {
				t.Errorf("dmarc = %s, want %s (%s)", v.DMARC.Result, tc.dmarc, v.DMARC.Reason)
			}
			if a, why := v.Action(Enforce); a != tc.action {
				t.Errorf("action = %d (%s), want %d", a, why, tc.action)
			}
			if a, _ := v.Action(Tag); a != Inbox {
				t.Errorf("tag mode acts: %d", a)
			}
		})
	}
}

func TestTemporaryErrors(t *testing.T) {
	w := newWorld(t)
	msg := w.sign(t, "reject.test", message("a@reject.test"))

	w.dns.ServFail("_dmarc.reject.test")
	v, _ := w.check(t, bad, "a@reject.test", message("a@reject.test"), Enforce)
	if a, _ := v.Action(Enforce); v.DMARC.Result != TempError || a != Defer {
		t.Errorf("SERVFAIL on DMARC: dmarc=%s action %d, want temperror and Defer", v.DMARC.Result, a)
	}
	w.dns.Recover("_dmarc.reject.test")

	w.dns.ServFail("s1._domainkey.reject.test")
	v, _ = w.check(t, bad, "a@reject.test", msg, Enforce)
	if a, _ := v.Action(Enforce); len(v.DKIM) != 1 || v.DKIM[0].Result != TempError || a != Defer {
		t.Errorf("SERVFAIL on the DKIM key: %v, action %d, want temperror and Defer", v, a)
	}
	// SPF alone passes DMARC: the key that did not answer cannot change that.
	v, _ = w.check(t, good, "a@reject.test", msg, Enforce)
	if a, _ := v.Action(Enforce); a != Inbox {
		t.Errorf("aligned SPF pass with DKIM temperror: action %d, want Inbox", a)
	}
	w.dns.Recover("s1._domainkey.reject.test")

	w.dns.ServFail("nodmarc.test")
	v, _ = w.check(t, bad, "a@nodmarc.test", message("a@nodmarc.test"), Enforce)
	if a, _ := v.Action(Enforce); v.SPF.Result != TempError || a != Defer {
		t.Errorf("SERVFAIL on SPF: spf=%s action %d, want temperror and Defer", v.SPF.Result, a)
	}
}

func TestBrokenDMARCRecordIsNoPolicy(t *testing.T) {
	w := newWorld(t)
	w.dns.Remove("_dmarc.reject.test", 16)
	w.dns.TXT("_dmarc.reject.test", "v=DMARC1; p=bogus")
	v, _ := w.check(t, bad, "a@reject.test", message("a@reject.test"), Enforce)
	if a, _ := v.Action(Enforce); v.DMARC.Result != PermError || a != RejectSPF {
		t.Errorf("dmarc=%s action %d, want permerror and RejectSPF as without a record", v.DMARC.Result, a)
	}
}

func TestOffSkipsDMARC(t *testing.T) {
	w := newWorld(t)
	v, _ := w.check(t, bad, "a@reject.test", message("a@reject.test"), Off)
	if v.DMARC.Result != "" || w.dns.Queries("_dmarc.reject.test") != 0 {
		t.Errorf("dmarc = %q after %d lookups, want none", v.DMARC.Result, w.dns.Queries("_dmarc.reject.test"))
	}
	if a, _ := v.Action(Off); a != Inbox {
		t.Errorf("off acts: %d", a)
	}
}

func TestHeaderAndForgedResults(t *testing.T) {
	w := newWorld(t)
	msg := "Authentication-Results: mx.example.test; dkim=pass header.d=reject.test\r\n" +
		"Authentication-Results: (sneaky)\r\n MX.Example.Test;\r\n\tdmarc=pass\r\n" +
		"Authentication-Results: other.example; spf=pass\r\n" +
		"Authentication-Results: mx.example.test.evil; spf=pass\r\n" +
		message("a@reject.test")
	v, stored := w.check(t, good, "a@reject.test", w.sign(t, "reject.test", msg), Enforce)
	if strings.Contains(stored, "mx.example.test;") || strings.Contains(stored, "MX.Example.Test") {
		t.Errorf("a field claiming our authserv-id was kept:\n%s", stored)
	}
	for _, keep := range []string{"other.example; spf=pass\r\n", "mx.example.test.evil; spf=pass\r\n", "\r\n\r\nHello.\r\n"} {
		if !strings.Contains(stored, keep) {
			t.Errorf("%q was lost:\n%s", keep, stored)
		}
	}
	h := v.Header(w.c.AuthservID())
	want := "Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=reject.test;\r\n" +
		"\tdkim=pass header.d=reject.test header.i=@reject.test header.s=s1;\r\n\tdmarc=pass header.from=reject.test\r\n"
	if h != want {
		t.Errorf("header\n%q, want\n%q", h, want)
	}
}

func TestClosedBeforeEnd(t *testing.T) {
	w := newWorld(t)
	m := w.c.Message(context.Background(), strings.NewReader(message("a@reject.test")+strings.Repeat("x\r\n", 100000)))
	buf := make([]byte, 10)
	if _, err := m.Read(buf); err != nil {
		t.Fatal(err)
	}
	m.Close() // the verifier must end: Verdict would otherwise wait forever
	v := m.Verdict(SPF{Result: None}, false)
	if len(v.DKIM) != 0 {
		t.Errorf("dkim = %v", v.DKIM)
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"enforce": Enforce, "tag": Tag, "off": Off} {
		if m, err := ParseMode(s); err != nil || m != want || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("on"); err == nil {
		t.Error("ParseMode(on) accepted")
	}
}

// Each DKIM result names its own signature's selector, also when the
// library verifies several.
func TestSelectors(t *testing.T) {
	w := newWorld(t)
	msg := w.sign(t, "reject.test", message("a@reject.test"))
	var b strings.Builder
	// Signed again with a selector that has no key: permerror.
	if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: "reject.test", Selector: "gone", Signer: w.key}); err != nil {
		t.Fatal(err)
	}
	v, _ := w.check(t, good, "a@reject.test", b.String(), Enforce)
	h := v.Header(w.c.AuthservID())
	if !strings.Contains(h, "dkim=permerror ") || !regexp.MustCompile(`dkim=permerror [^;]*header\.s=gone;`).MatchString(h) ||
		!regexp.MustCompile(`dkim=pass [^;]*header\.s=s1;`).MatchString(h) {
		t.Errorf("selectors not paired with their results:\n%s", h)
	}
}
