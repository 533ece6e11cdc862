package rspamd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckSendsEnvelopeAndReadsAnswer(t *testing.T) {
	const message = "Subject: hi\r\n\r\nbody\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := r.Header
		if r.Method != http.MethodPost || r.URL.Path != "/checkv2" || string(body) != message ||
			r.ContentLength != int64(len(message)) || h.Get("IP") != "192.0.2.7" || h.Get("Helo") != "client.example" ||
			h.Get("From") != "s@example.org" || !slices.Equal(h.Values("Rcpt"), []string{"a@example.test", "b@example.test"}) ||
			h.Get("Queue-Id") != "Q1" {
			t.Errorf("request: %s %s, headers %v, %d bytes %q", r.Method, r.URL.Path, h, r.ContentLength, body)
		}
		io.WriteString(w, `{"action": "add header", "score": 7.5, "required_score": 15,
			"messages": {"smtp_message": "Spam\r\n here"},
			"milter": {"add_headers": {"X-Spam": "Yes", "X-Spam-Level": {"value": "*******", "order": 0},
				"X-Multi": [{"value": "1", "order": -1}, {"value": "2", "order": 2}]},
				"remove_headers": {"X-Spam": 0}}}`)
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{IP: netip.MustParseAddr("192.0.2.7"), Helo: "client.example", From: "s@example.org",
		Rcpts: []string{"a@example.test", "b@example.test"}, QueueID: "Q1"}
	r, err := c.Check(t.Context(), env, strings.NewReader(message), int64(len(message)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != AddHeader || r.Score != 7.5 || r.Message != "Spam here" || !r.Junk() || r.Refusal() != nil {
		t.Errorf("result %+v", r)
	}
	want := []Field{{"X-Multi", "1", -1}, {"X-Multi", "2", 2}, {"X-Spam", "Yes", -1}, {"X-Spam-Level", "*******", 0}}
	if !slices.Equal(r.Add, want) || r.Remove["X-Spam"] != 0 || len(r.Remove) != 1 {
		t.Errorf("milter: add %+v remove %v, want add %+v", r.Add, r.Remove, want)
	}
}

func TestCheckFailures(t *testing.T) {
	for name, handler := range map[string]http.HandlerFunc{
		"status":    func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error": "overloaded"}`, 503) },
		"garbage":   func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") },
		"no action": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"score": 1}`) },
	} {
		srv := httptest.NewServer(handler)
		c, _ := New(srv.URL, time.Minute)
		if _, err := c.Check(t.Context(), Envelope{}, strings.NewReader("x"), 1); err == nil {
			t.Errorf("%s: no error", name)
		}
		srv.Close()
	}
	if _, err := New("127.0.0.1:11333", time.Second); err == nil {
		t.Error("a URL without scheme accepted")
	}
}

// Spam without rspamd's headers still says so in the Junk folder.
func TestJunkWithoutHeaders(t *testing.T) {
	for answer, want := range map[string][]Field{
		`{"action": "add header", "is_skipped": true}`: {{"X-Spam", "Yes", -1}},
		`{"action": "no action"}`:                      nil,
		`{"action": "add header", "milter": {"add_headers": {"X-Spam-Status": "Yes, score=9"}}}`: {{"X-Spam-Status", "Yes, score=9", -1}},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, answer) }))
		c, _ := New(srv.URL, time.Minute)
		r, err := c.Check(t.Context(), Envelope{}, strings.NewReader("x"), 1)
		srv.Close()
		if err != nil || !slices.Equal(r.Add, want) {
			t.Errorf("%s: add %+v, %v; want %+v", answer, r.Add, err, want)
		}
	}
}

func TestActions(t *testing.T) {
	for _, c := range []struct {
		action        string
		refused, junk bool
		known         bool
	}{
		{Reject, true, false, true}, {SoftReject, true, false, true}, {Greylist, true, false, true},
		{AddHeader, false, true, true}, {RewriteSubject, false, true, true}, {NoAction, false, false, true},
		{"discard", false, false, false},
	} {
		r := &Result{Action: c.action}
		if (r.Refusal() != nil) != c.refused || r.Junk() != c.junk || r.Known() != c.known {
			t.Errorf("%s: refusal %v junk %v known %v", c.action, r.Refusal(), r.Junk(), r.Known())
		}
	}
}

func TestEdit(t *testing.T) {
	section := "Return-Path: <s@example.org>\r\nReceived: from x\r\n\tby y\r\nSubject: cheap\r\n\tpills\r\n" +
		"X-Spam: forged\r\nX-Tag: 1\r\nX-Tag: 2\r\nX-Tag: 3\r\n\r\n"
	r := &Result{
		Action:  RewriteSubject,
		Subject: "[SPAM] cheap pills",
		Remove:  map[string]int{"x-spam": 0, "X-Tag": 2, "X-TAG": -1},
		Add: []Field{
			{"X-Spam", "Yes", -1},
			{"X-Spamd-Result", "default: True [7.00 / 15.00];\r\n\tSYM(7.00)[]", -1},
			{"X-Injected", "a\r\nBcc: victim@example.org", 0},
			{"Bad Name", "x", -1},
		},
	}
	want := "X-Injected: a Bcc: victim@example.org\r\nReturn-Path: <s@example.org>\r\nReceived: from x\r\n\tby y\r\n" +
		"Subject: [SPAM] cheap pills\r\nX-Tag: 1\r\n" +
		"X-Spam: Yes\r\nX-Spamd-Result: default: True [7.00 / 15.00];\r\n\tSYM(7.00)[]\r\n\r\n"
	if got := string(r.Edit([]byte(section))); got != want {
		t.Errorf("Edit:\n%q\nwant\n%q", got, want)
	}
	// A message with no body: nothing ends its header section.
	r = &Result{Action: NoAction, Add: []Field{{"X-Spam-Status", "No", -1}}}
	if got := string(r.Edit([]byte("Subject: x\r\n"))); got != "Subject: x\r\nX-Spam-Status: No\r\n" {
		t.Errorf("Edit without body: %q", got)
	}
}
