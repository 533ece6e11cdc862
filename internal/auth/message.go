package auth

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"facteur/internal/header"
)

// maxSignatures bounds the DKIM signatures verified in one message: each
// costs a DNS lookup and a hash of the body.
const maxSignatures = 8

// errStopped ends the DKIM verifier of a message that was not read whole.
var errStopped = errors.New("auth: message not read to its end")

// Message checks one message while it streams past. Read it to its end,
// as the copy to store: it is the message without the
// Authentication-Results fields that claim to be ours (RFC 8601 5); then
// Verdict tells what the checks found. Close releases the DKIM verifier
// of a message not read to its end.
type Message struct {
	c     *Checker
	ctx   context.Context
	r     io.Reader
	pw    *io.PipeWriter
	dkim  chan []DKIM
	from  []string // the From: values, once the header section has gone past
	ended bool     // the header section has gone past
}

// Message starts checking data, the message as the client sends it.
func (c *Checker) Message(ctx context.Context, data io.Reader) *Message {
	pr, pw := io.Pipe()
	m := &Message{c: c, ctx: ctx, pw: pw, dkim: make(chan []DKIM, 1)}
	// DKIM reads its own copy of the data, concurrently: the key lookups
	// and the body hash overlap the transfer instead of following it.
	go func() {
		m.dkim <- c.verifyDKIM(ctx, pr)
		io.Copy(io.Discard, pr)
	}()
	watched := header.Watch(&tee{r: data, pw: pw}, "From", func(values []string) error {
		m.from, m.ended = values, true
		return nil
	})
	m.r = header.Drop(watched, "Authentication-Results", c.ours)
	return m
}

func (m *Message) Read(p []byte) (int, error) { return m.r.Read(p) }

// Close stops the DKIM verifier if the message was not read whole.
func (m *Message) Close() { m.pw.CloseWithError(errStopped) }

// ours tells whether an Authentication-Results value carries our
// authserv-id, comments aside.
func (c *Checker) ours(value string) bool {
	for strings.HasPrefix(value, "(") {
		end := strings.IndexByte(value, ')')
		if end < 0 {
			return false
		}
		value = strings.TrimSpace(value[end+1:])
	}
	id := value
	if i := strings.IndexAny(id, "; \t("); i >= 0 {
		id = id[:i]
	}
	return strings.EqualFold(id, c.id)
}

// tee passes data through and copies it to the DKIM verifier.
type tee struct {
	r  io.Reader
	pw *io.PipeWriter
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		// An error here means the verifier has stopped: the copy is not
		// needed any more.
		t.pw.Write(p[:n])
	}
	if err != nil {
		t.pw.CloseWithError(err)
	}
	return n, err
}

// DKIM is the verdict on one signature.
type DKIM struct {
	Result     Result
	Domain     string // d=
	Identifier string // i=
	Selector   string // s=
	Reason     string
}

// tag is the value of one tag of a DKIM-Signature field (RFC 6376 3.2).
func tag(field, name string) string {
	for _, t := range strings.Split(field, ";") {
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

func (d DKIM) authres() authres.Result {
	// DKIMResult has no header.s (RFC 8601 2.7.1), which tells two
	// signatures of one domain apart.
	return &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result), Params: map[string]string{
		"reason": d.Reason, "header.d": d.Domain, "header.i": d.Identifier, "header.s": d.Selector}}
}

func (c *Checker) verifyDKIM(ctx context.Context, r io.Reader) []DKIM {
	// The verifications come in the order of the signature fields, whose
	// s= tags the library does not return.
	var sigs []string
	r = header.Watch(r, "DKIM-Signature", func(values []string) error { sigs = values; return nil })
	vs, err := dkim.VerifyWithOptions(r, &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return c.r.LookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	if errors.Is(err, errStopped) {
		return nil // nobody will ask
	}
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// The header section did not parse: no signature in it counts.
		return []DKIM{{Result: PermError, Reason: err.Error()}}
	}
	out := make([]DKIM, 0, len(vs))
	for i, v := range vs {
		d := DKIM{Result: Pass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		if i < len(sigs) {
			d.Selector = tag(sigs[i], "s")
		}
		switch err := v.Err; {
		case err == nil:
		case dkim.IsTempFail(err):
			d.Result, d.Reason = TempError, err.Error()
		case dkim.IsPermFail(err):
			d.Result, d.Reason = PermError, err.Error()
		default:
			d.Result, d.Reason = Fail, err.Error()
		}
		out = append(out, d)
	}
	return out
}
