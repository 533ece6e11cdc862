package dkim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"facteur/internal/header"
)

// recommended are the fields RFC 6376 5.4.1 says to sign when present,
// then Message-ID and the MIME fields, which name and shape the message;
// List-Unsubscribe-Post must be signed for one-click unsubscribe to be
// honoured (RFC 8058 4).
var recommended = []string{
	"from", "reply-to", "subject", "date", "to", "cc",
	"resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc",
	"in-reply-to", "references",
	"list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
	"list-unsubscribe-post",
	"message-id", "mime-version", "content-type", "content-transfer-encoding",
}

// oversigned fields are listed once more than they occur, so that a copy
// added after signing (a second From, a Subject where there was none)
// breaks the signature instead of being shown under it (RFC 6376 8.15).
var oversigned = map[string]bool{
	"from": true, "subject": true, "to": true, "cc": true, "date": true,
	"message-id": true, "mime-version": true, "content-type": true, "reply-to": true,
}

// Signed is what Sign made of one message.
type Signed struct {
	// Header holds one DKIM-Signature field per key, to put before the
	// message; nil when unsigned.
	Header []byte
	// Domain is the From domain, lower case; "" when the message has no
	// From address that parses.
	Domain string
	// Keys are the keys that signed, in Header's order (after a failure,
	// those that were to sign); none when no key is for Domain.
	Keys []*Key
}

// Sign reads msg (header and body, CRLF line endings) and signs it, relaxed
// header and body, with every key of its From domain (see For), each
// signature valid for expiration from now (0: no expiry). With no key for
// the From domain it stops after the header and returns no signature. An
// error after the From domain is known comes with the Signed so far.
func (ks *Keys) Sign(msg io.Reader, expiration time.Duration) (*Signed, error) {
	br := bufio.NewReader(msg)
	raw, fields, ended, err := header.Read(br)
	if err != nil {
		return nil, fmt.Errorf("dkim: reading the message: %w", err)
	}
	s := &Signed{Domain: fromDomain(fields)}
	if s.Domain == "" {
		return s, nil
	}
	s.Keys = ks.For(s.Domain)
	if len(s.Keys) == 0 {
		return s, nil
	}
	if !ended {
		// A message that is all header has an empty body; the library
		// wants the empty line that says so (and the sender ends the last
		// line, as DATA needs).
		if !bytes.HasSuffix(raw, []byte("\n")) {
			raw = append(raw, "\r\n"...)
		}
		raw = append(raw, "\r\n"...)
	}
	opts := msgauth.SignOptions{
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		HeaderKeys:             signedFields(fields),
	}
	if expiration > 0 {
		opts.Expiration = time.Now().Add(expiration)
	}
	signers := make([]*msgauth.Signer, 0, len(s.Keys))
	defer func() {
		for _, sg := range signers {
			sg.Close() // after a failure: ends the library's goroutine
		}
	}()
	ws := make([]io.Writer, 0, len(s.Keys))
	for _, k := range s.Keys {
		o := opts
		o.Domain, o.Selector, o.Signer = k.Domain, k.Selector, k.Signer
		sg, err := msgauth.NewSigner(&o)
		if err != nil {
			return s, fmt.Errorf("dkim: key %s: %w", k.File, err)
		}
		signers = append(signers, sg)
		ws = append(ws, sg)
	}
	w := io.MultiWriter(ws...)
	if _, err := w.Write(raw); err == nil {
		_, err = io.Copy(w, br)
	}
	if err != nil {
		return s, fmt.Errorf("dkim: reading the message: %w", err)
	}
	var hdr []byte
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			return s, fmt.Errorf("dkim: signing with key %s: %w", s.Keys[i].File, err)
		}
		hdr = append(hdr, sg.Signature()...)
	}
	signers = nil
	s.Header = hdr
	return s, nil
}

// Names lists the signatures as d/selector, comma-separated, for the log.
func (s *Signed) Names() string {
	names := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		names[i] = k.Domain + "/" + k.Selector
	}
	return strings.Join(names, ",")
}

// fromDomain is the domain of the first address of the first From field,
// lower case, or "".
func fromDomain(fields []header.Field) string {
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "from") {
			continue
		}
		addrs, err := header.Addresses(f.Value)
		if err != nil || len(addrs) == 0 {
			return ""
		}
		a := addrs[0].Address
		return strings.TrimSuffix(strings.ToLower(a[strings.LastIndexByte(a, '@')+1:]), ".")
	}
	return ""
}

// signedFields is the h= list for a message with these fields.
func signedFields(fields []header.Field) []string {
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(f.Name)]++
	}
	var names []string
	for _, name := range recommended {
		n := count[name]
		if oversigned[name] {
			n++
		}
		for range n {
			names = append(names, name)
		}
	}
	return names
}
