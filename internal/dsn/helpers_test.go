package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)

const original = "Received: from client.example.net\r\n" +
	"From: Alice <alice@example.net>\r\n" +
	"To: bob@example.org, carol@nowhere.example\r\n" +
	"Subject: Lunch on Friday?\r\n" +
	"Message-ID: <1234@client.example.net>\r\n" +
	"\r\n" +
	"The secret body: see you at noon.\r\n"

func bounce() *Bounce {
	return &Bounce{
		ReportingMTA: "mx.example.com",
		ID:           "0F3KX5ZQ8N7M2A1B",
		From:         "alice@example.net",
		Arrival:      now.Add(-time.Hour),
		Rcpts: []Recipient{{
			Addr:        "bob@example.org",
			Action:      "failed",
			Status:      "5.1.1",
			RemoteMTA:   "mx1.example.org",
			Diagnostic:  "550 5.1.1 <bob@example.org>: no such user",
			LastAttempt: now.Add(-time.Minute),
		}, {
			Addr:        "carol@nowhere.example",
			Action:      "failed",
			Status:      "5.1.2",
			Diagnostic:  "Host or domain name not found: nowhere.example",
			LastAttempt: now.Add(-time.Minute),
		}},
		Original: strings.NewReader(original),
		Now:      now,
	}
}

// report is a bounce as a mail client sees it.
type report struct {
	header mail.Header
	parts  []part
}

type part struct {
	header textproto.MIMEHeader // without Content-Transfer-Encoding if it was quoted-printable
	body   []byte               // decoded
}

// build builds b, checks what every bounce must satisfy, and parses it.
func build(t *testing.T, b *Bounce) (*report, []byte) {
	t.Helper()
	raw, err := Build(b)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	checkLines(t, raw)
	r, err := parse(raw)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, raw)
	}
	return r, raw
}

// checkLines fails unless every line of raw ends in CRLF and is at most 998
// octets long.
func checkLines(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Errorf("message does not end in CRLF: ...%q", raw[max(0, len(raw)-20):])
	}
	for i, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		text, ok := bytes.CutSuffix(line, []byte("\r\n"))
		if !ok {
			t.Errorf("line %d does not end in CRLF: %.80q", i+1, line)
		}
		if bytes.IndexByte(text, '\r') >= 0 || bytes.IndexByte(text, '\n') >= 0 {
			t.Errorf("line %d has a bare CR or LF: %.80q", i+1, line)
		}
		if len(text) > 998 {
			t.Errorf("line %d is %d octets long", i+1, len(text))
		}
	}
}

func parse(raw []byte) (*report, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if mt != "multipart/report" {
		return nil, errors.New("Content-Type is " + mt)
	}
	r := &report{header: m.Header}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return r, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		r.parts = append(r.parts, part{p.Header, body})
	}
}

// blocks parses a message/delivery-status body into its header blocks: the
// per-message fields, then one block per recipient.
func blocks(body []byte) ([]textproto.MIMEHeader, error) {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(body, "\r\n"...))))
	var hs []textproto.MIMEHeader
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			hs = append(hs, h)
		}
		if err == io.EOF {
			return hs, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
