package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// loadKeys makes keys for example.org (RSA and Ed25519) and returns them
// with the TXT records a verifier would find.
func loadKeys(t *testing.T) (*Keys, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	genWrite(t, dir, "example.org", "r", "rsa")
	genWrite(t, dir, "example.org", "e", "ed25519")
	ks, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	txt := map[string]string{}
	for _, k := range ks.All() {
		txt[k.Name()] = k.Record()
	}
	return ks, txt
}

// verify checks the signatures with go-msgauth's verifier.
func verify(t *testing.T, msg []byte, txt map[string]string) []*msgauth.Verification {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := txt[name]; ok {
				return []string{v}, nil
			}
			return nil, errors.New("no such record")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

const msg = "Received: from client\r\n\tby mx.example.org; Mon, 1 Dec 2026 10:00:00 +0000\r\n" +
	"From: Alice =?windows-1252?Q?Andr=E9?= <alice@Mail.Example.ORG>\r\n" +
	"To: bob@remote.test\r\nSubject: hello\r\nReferences: <a@b>\r\n" +
	"X-Mailer: test\r\n\r\nHello,  world.\r\n\r\n\r\n"

func TestSignBothAlgorithmsOversigned(t *testing.T) {
	ks, txt := loadKeys(t)
	s, err := ks.Sign(strings.NewReader(msg), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s.Domain != "mail.example.org" || s.Names() != "example.org/e,example.org/r" {
		t.Fatalf("signed %q as %q", s.Domain, s.Names())
	}
	signed := append(s.Header, msg...)
	vs := verify(t, signed, txt)
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want 2", len(vs))
	}
	// In the order of RFC 6376 5.4.1; those guarded once more than present.
	want := "from:from:reply-to:subject:subject:date:to:to:cc:references:message-id:mime-version:content-type"
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.org" {
			t.Errorf("signature of %s: %v", v.Domain, v.Err)
		}
		if got := strings.Join(v.HeaderKeys, ":"); got != want {
			t.Errorf("h=%s, want %s", got, want)
		}
		if d := v.Expiration.Sub(time.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("x= in %s, want an hour", d)
		}
	}
	if !bytes.Contains(s.Header, []byte("a=ed25519-sha256")) || !bytes.Contains(s.Header, []byte("a=rsa-sha256")) ||
		!bytes.Contains(s.Header, []byte("c=relaxed/relaxed")) {
		t.Errorf("signature fields:\n%s", s.Header)
	}

	// Relaxed: whitespace changes on the way keep it valid; what the
	// oversigning guards, a second Subject, breaks it; so does the body.
	for change, valid := range map[[2]string]bool{
		{"Subject: hello", "Subject:   hello "}:                 true,
		{"Hello,  world.", "Hello, world."}:                     true,
		{"X-Mailer: test", "X-Mailer: other"}:                   true,
		{"From: Alice", "Subject: evil\r\nFrom: Alice"}:         false,
		{"\r\n\r\nHello", "\r\nCc: eve@evil.test\r\n\r\nHello"}: false,
		{"Hello,  world.", "Hello,  World."}:                    false,
	} {
		changed := strings.Replace(string(signed), change[0], change[1], 1)
		for _, v := range verify(t, []byte(changed), txt) {
			if (v.Err == nil) != valid {
				t.Errorf("%q → %q: %v, want valid=%t", change[0], change[1], v.Err, valid)
			}
		}
	}
}

func TestSignWithoutExpiration(t *testing.T) {
	ks, txt := loadKeys(t)
	s, err := ks.Sign(strings.NewReader(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range verify(t, append(s.Header, msg...), txt) {
		if v.Err != nil || !v.Expiration.IsZero() {
			t.Errorf("signature: %v, expires %v; want valid without x=", v.Err, v.Expiration)
		}
	}
}

func TestSignNothingWithoutKey(t *testing.T) {
	ks, _ := loadKeys(t)
	for _, m := range []string{
		"From: a@other.test\r\n\r\nbody\r\n",
		"From: a@org\r\n\r\nbody\r\n", // a top-level domain never signs
		"From: not an address\r\n\r\nbody\r\n",
		"Subject: no From\r\n\r\nbody\r\n",
	} {
		s, err := ks.Sign(strings.NewReader(m), time.Hour)
		if err != nil || s.Header != nil || len(s.Keys) != 0 {
			t.Errorf("%q: signed %q, %v; want unsigned", m, s.Header, err)
		}
	}
}

func TestSignHeaderOnlyMessage(t *testing.T) {
	ks, txt := loadKeys(t)
	for _, m := range []string{"From: a@example.org\r\nSubject: x\r\n", "From: a@example.org\r\nSubject: x"} {
		s, err := ks.Sign(strings.NewReader(m), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sent := append(s.Header, m...)
		if !bytes.HasSuffix(sent, []byte("\r\n")) {
			sent = append(sent, "\r\n"...) // as DATA ends it
		}
		// go-msgauth's verifier, unlike others, wants the empty line.
		for _, v := range verify(t, append(sent, "\r\n"...), txt) {
			if v.Err != nil {
				t.Errorf("%q: %v", m, v.Err)
			}
		}
	}
}

// failingKey is a key whose signing fails, as a key held elsewhere (a
// token, an agent) can.
type failingKey struct{ ed25519.PrivateKey }

func (failingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("token removed")
}

func TestSignFailureIsAnError(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	ks := &Keys{byDomain: map[string][]*Key{
		"example.org": {{Domain: "example.org", Selector: "s", File: "/keys/example.org/s.pem", Signer: failingKey{priv}}},
	}}
	s, err := ks.Sign(strings.NewReader(msg), time.Hour)
	if err == nil || !strings.Contains(err.Error(), "/keys/example.org/s.pem") || !strings.Contains(err.Error(), "token removed") {
		t.Errorf("Sign with a failing key: %v", err)
	}
	if s == nil || s.Header != nil || s.Names() != "example.org/s" {
		t.Errorf("after the failure: %+v, want the key that failed and no signature", s)
	}
}
