package queue

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 10000; i++ {
		id := NewID()
		if !validID(id) {
			t.Fatalf("NewID() = %q, not valid", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
		if id[:8] < prev {
			t.Fatalf("ids not sorted by time: %q after %q", id, prev)
		}
		prev = id[:8]
	}
}

func TestParseEnvelope(t *testing.T) {
	id := NewID()
	good := &Envelope{ID: id, From: "a@b.test", Arrival: time.Now(), Rcpts: []Rcpt{{Addr: "c@d.test", State: Pending}}}
	b := mustMarshal(t, good)
	if _, err := parseEnvelope(b, id); err != nil {
		t.Fatalf("own envelope refused: %v", err)
	}
	for name, mutate := range map[string]func(e *Envelope){
		"other id":     func(e *Envelope) { e.ID = NewID() },
		"no rcpts":     func(e *Envelope) { e.Rcpts = nil },
		"no arrival":   func(e *Envelope) { e.Arrival = time.Time{} },
		"bad state":    func(e *Envelope) { e.Rcpts[0].State = "lost" },
		"no @":         func(e *Envelope) { e.Rcpts[0].Addr = "postmaster" },
		"CR in rcpt":   func(e *Envelope) { e.Rcpts[0].Addr = "c@d.test\r\nRCPT TO:<x@y>" },
		"LF in sender": func(e *Envelope) { e.From = "a@b.test\nx" },
		"negative":     func(e *Envelope) { e.Attempts = -1 },
		"bad origin":   func(e *Envelope) { e.Origin = "elsewhere" },
	} {
		e := *good
		e.Rcpts = append([]Rcpt(nil), good.Rcpts...)
		mutate(&e)
		if _, err := parseEnvelope(mustMarshal(t, &e), id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, data := range map[string]string{
		"unknown field": strings.Replace(string(b), `"from"`, `"evil": 1, "from"`, 1),
		"trailing":      string(b) + `{"id": "x"}`,
		"trailing }":    string(b) + `}`,
		"trailing ]":    string(b) + `]`,
		"truncated":     string(b[:len(b)/2]),
		"empty":         "",
		"null":          "null",
	} {
		if _, err := parseEnvelope([]byte(data), id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseEnvelope feeds data both as an envelope file and as a message
// file (envelope line, then the message bytes): whatever is accepted must
// come back the same through our own encoding, and the message bytes must
// be exactly what follows the line.
func FuzzParseEnvelope(f *testing.F) {
	id := "0F3KX5ZQ8N7M2A1B"
	seed := &Envelope{ID: id, From: "alice@example.net", Origin: FromSubmission, Arrival: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Size: 1234, EightBit: true, Attempts: 3, NextAttempt: time.Date(2026, 1, 2, 4, 0, 0, 0, time.FixedZone("", 3600)),
		Rcpts: []Rcpt{
			{Addr: "bob@example.org", State: Pending, Code: 451, Enhanced: "4.2.0", LastError: "busy", Host: "mx.example.org",
				LastAttempt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)},
			{Addr: "carol@example.org", State: Sent},
			{Addr: "dave@example.org", State: Failed, Code: 550, Enhanced: "5.1.1", LastError: "no such user"},
		}}
	b, err := seed.marshal()
	if err != nil {
		f.Fatal(err)
	}
	head, err := seed.marshalHead()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, id)
	f.Add(append(head, "Received: from x\r\n\r\nbody {\n}\r\n"...), id)
	f.Add(head, id)
	f.Add([]byte(`{"id":"`+id+`","from":"","arrival":"2026-01-02T03:04:05Z","size":0,"attempts":0,"next_attempt":"0001-01-01T00:00:00Z","rcpts":[{"addr":"a@b","state":"pending"}]}`), id)
	f.Add([]byte(`{"id":"`+id+`","from":"","arrival":"2026-01-02T03:04:05Z","rcpts":[{"addr":"a@b","state":"pending"}]}`+"\n\n"), id)
	f.Add([]byte("{}"), id)
	f.Add([]byte("Received: from old.layout\r\n\r\n"), id)
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		if env, err := parseEnvelope(data, id); err == nil {
			out, err := env.marshal()
			if err != nil {
				t.Fatalf("accepted envelope does not marshal: %v\n%q", err, data)
			}
			again, err := parseEnvelope(out, id)
			if err != nil {
				t.Fatalf("own output refused: %v\ninput %q\noutput %s", err, data, out)
			}
			out2, err := again.marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the envelope:\n%s\n%s", out, out2)
			}
			if !sameEnvelope(env, again) {
				t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, again)
			}
		}

		env, off, err := readHead(bytes.NewReader(data), id)
		if err != nil {
			return
		}
		if off < 2 || off > int64(len(data)) || data[off-1] != '\n' || bytes.IndexByte(data[:off-1], '\n') >= 0 {
			t.Fatalf("message bytes at %d: not just after the first line of %q", off, data)
		}
		line, err := env.marshalHead()
		if err != nil {
			t.Fatalf("accepted envelope line does not marshal: %v\n%q", err, data)
		}
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("own envelope line is not one line: %q", line)
		}
		file := append(line, data[off:]...)
		again, off2, err := readHead(bytes.NewReader(file), id)
		if err != nil {
			t.Fatalf("own message file refused: %v\ninput %q\noutput %q", err, data, file)
		}
		if !bytes.Equal(file[off2:], data[off:]) {
			t.Fatalf("message bytes changed: %q, want %q", file[off2:], data[off:])
		}
		env.Size = 0 // the line never holds a size
		if !sameEnvelope(env, again) {
			t.Fatalf("round trip changed the envelope line:\n%+v\n%+v", env, again)
		}
	})
}

// sameEnvelope compares two envelopes, times by instant.
func sameEnvelope(a, b *Envelope) bool {
	if a.ID != b.ID || a.From != b.From || a.Origin != b.Origin || !a.Arrival.Equal(b.Arrival) || a.Size != b.Size || a.EightBit != b.EightBit ||
		a.SMTPUTF8 != b.SMTPUTF8 || a.Attempts != b.Attempts || !a.NextAttempt.Equal(b.NextAttempt) || len(a.Rcpts) != len(b.Rcpts) {
		return false
	}
	for i, r := range a.Rcpts {
		s := b.Rcpts[i]
		if r.Addr != s.Addr || r.State != s.State || r.Code != s.Code || r.Enhanced != s.Enhanced || r.LastError != s.LastError ||
			r.Host != s.Host || !r.LastAttempt.Equal(s.LastAttempt) {
			return false
		}
	}
	return true
}

func TestRcptLast(t *testing.T) {
	for _, c := range []struct {
		r    Rcpt
		want string
	}{
		{Rcpt{}, ""},
		{Rcpt{Code: 450, Enhanced: "4.2.0", LastError: "mailbox\n busy", Host: "mx1.example.org"},
			"450 4.2.0 mailbox busy (mx1.example.org)"},
		// No server answered: no code, and the reason names what was tried.
		{Rcpt{Enhanced: "4.4.3", LastError: "mx example.org: SERVFAIL"}, "4.4.3 mx example.org: SERVFAIL"},
		{Rcpt{Enhanced: "4.4.1", LastError: "mx1.example.org[192.0.2.1]: connection failed: refused", Host: "mx1.example.org"},
			"4.4.1 mx1.example.org[192.0.2.1]: connection failed: refused"},
		{Rcpt{Enhanced: "4.4.2", LastError: "connection lost: EOF", Host: "mx1.example.org"},
			"4.4.2 connection lost: EOF (mx1.example.org)"},
	} {
		if got := c.r.Last(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}
