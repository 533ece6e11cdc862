package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// State is where one recipient of a queued message stands.
type State string

const (
	Pending State = "pending" // to be (re)tried
	Sent    State = "sent"    // a server took it (or it was stored locally)
	Failed  State = "failed"  // given up on; the sender was told (or the null sender was not)
)

// Origin is how a message entered the queue; it decides whether the
// message is ours to DKIM-sign.
type Origin string

const (
	FromRelay      Origin = "relay"      // the relay listener (trusted networks, and sendmail while the server runs)
	FromSubmission Origin = "submission" // a session after AUTH
	FromSendmail   Origin = "sendmail"   // the maildrop, which sendmail fills while the server is down
	FromFacteur    Origin = "facteur"    // written here: bounces and delay warnings
	FromMX         Origin = "mx"         // an MX listener: another domain's mail, never signed by us
	FromForward    Origin = "forward"    // an MX listener's mail forwarded by an alias, or a bounce to an SRS address: never signed
	FromTLSReport  Origin = "tls-report" // a TLS report (RFC 8460) written here
)

// Signs reports whether mail of this origin is DKIM-signed when its From
// domain has a key: all but what came in from other domains' servers. ""
// is an envelope written before origins were recorded, when only the
// signed origins reached the queue.
func (o Origin) Signs() bool { return o != FromMX && o != FromForward }

func (o Origin) valid() bool {
	switch o {
	case FromRelay, FromSubmission, FromSendmail, FromFacteur, FromMX, FromForward, FromTLSReport:
		return true
	}
	return false
}

// Envelope is what the spool keeps with each message: who sent it, each
// recipient's state, and when to try next. The message file starts with it
// as enqueued; an attempt that leaves work to do writes it whole and
// atomically to an envelope file, which supersedes that first line.
type Envelope struct {
	ID          string    `json:"id"`
	From        string    `json:"from"` // "" is the null sender: a bounce
	Origin      Origin    `json:"origin,omitempty"`
	Arrival     time.Time `json:"arrival"`
	Size        int64     `json:"size,omitempty"` // of the message bytes; not in the message file's line
	EightBit    bool      `json:"8bitmime,omitempty"`
	SMTPUTF8    bool      `json:"smtputf8,omitempty"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	// Warned: the sender was told the message is late (Config.DelayWarning).
	Warned bool   `json:"warned,omitempty"`
	Rcpts  []Rcpt `json:"rcpts"`
}

// Rcpt is one recipient and the outcome of its last attempt.
type Rcpt struct {
	Addr        string    `json:"addr"`
	State       State     `json:"state"`
	Code        int       `json:"code,omitempty"`
	Enhanced    string    `json:"enhanced,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	Host        string    `json:"host,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
}

// Last describes the outcome of the last attempt on one line, for the
// queue listing: the remote reply and the host that gave it, or, when no
// server answered, the reason, which names the host or domain tried
// ("mx1.example.org[192.0.2.1]: connection failed: ...", "mx example.org:
// ..."). "" before the first attempt.
func (r Rcpt) Last() string {
	if r.LastError == "" {
		return ""
	}
	parts := []string{}
	if r.Code != 0 {
		parts = append(parts, strconv.Itoa(r.Code))
	}
	if r.Enhanced != "" {
		parts = append(parts, r.Enhanced)
	}
	parts = append(parts, strings.Join(strings.Fields(r.LastError), " "))
	if r.Host != "" && !strings.Contains(r.LastError, r.Host) {
		parts = append(parts, "("+r.Host+")")
	}
	return strings.Join(parts, " ")
}

func (e *Envelope) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("queue: encode envelope %s: %w", e.ID, err)
	}
	return append(b, '\n'), nil
}

// marshalHead encodes e as the first line of its message file: compact
// JSON, which never holds a raw newline, then "\n". The size is left out:
// it is not known before the message is written, and the file tells it.
func (e *Envelope) marshalHead() ([]byte, error) {
	c := *e
	c.Size = 0
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("queue: encode envelope %s: %w", e.ID, err)
	}
	return append(b, '\n'), nil
}

// parseEnvelope reads an envelope (an envelope file, or the line that
// starts a message file) and checks that it is one of ours and consistent;
// anything else is treated as corrupt by the caller.
func parseEnvelope(b []byte, id string) (*Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	// More would let a stray "}" or "]" through; only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the envelope")
	}
	switch {
	case e.ID != id:
		return nil, fmt.Errorf("envelope id %q does not match file name %q", e.ID, id)
	case !validID(e.ID):
		return nil, fmt.Errorf("bad id %q", e.ID)
	case len(e.Rcpts) == 0:
		return nil, errors.New("no recipients")
	case e.Arrival.IsZero():
		return nil, errors.New("no arrival time")
	case e.Size < 0 || e.Attempts < 0:
		return nil, errors.New("negative size or attempts")
	case e.Origin != "" && !e.Origin.valid():
		return nil, fmt.Errorf("unknown origin %q", e.Origin)
	}
	for _, r := range e.Rcpts {
		switch r.State {
		case Pending, Sent, Failed:
		default:
			return nil, fmt.Errorf("recipient %q: unknown state %q", r.Addr, r.State)
		}
		if !strings.Contains(r.Addr, "@") || strings.ContainsAny(r.Addr, "\r\n\x00") {
			return nil, fmt.Errorf("bad recipient address %q", r.Addr)
		}
	}
	if strings.ContainsAny(e.From, "\r\n\x00") {
		return nil, fmt.Errorf("bad sender %q", e.From)
	}
	return &e, nil
}

// validID accepts exactly what NewID makes, so no file name from the spool
// directory can smuggle a path or an odd character into anything.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune(idAlphabet, rune(id[i])) {
			return false
		}
	}
	return true
}

// pending lists the indexes of recipients still to deliver.
func (e *Envelope) pending() []int {
	var idx []int
	for i, r := range e.Rcpts {
		if r.State == Pending {
			idx = append(idx, i)
		}
	}
	return idx
}
