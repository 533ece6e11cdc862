// Package rspamd asks an rspamd server for its verdict on a message, over
// rspamd's HTTP protocol (POST /checkv2, JSON answer), and applies the
// header changes it asks for.
package rspamd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Client talks to one rspamd server (its normal worker, port 11333 by
// default). It is safe for concurrent use.
type Client struct {
	check string // URL of /checkv2
	http  *http.Client
}

// New returns a client of the rspamd at base ("http://127.0.0.1:11333");
// timeout bounds one whole check, the message sent and the answer read.
func New(base string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rspamd: %q is not an http:// or https:// URL", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/checkv2"
	return &Client{check: u.String(), http: &http.Client{Timeout: timeout}}, nil
}

// Envelope is what the SMTP session knows of a message, which rspamd
// cannot read from it.
type Envelope struct {
	IP      netip.Addr
	Helo    string
	From    string // MAIL FROM; "" for the null sender
	Rcpts   []string
	QueueID string
}

// Actions are the words rspamd answers with.
const (
	Reject         = "reject"
	SoftReject     = "soft reject"
	Greylist       = "greylist"
	AddHeader      = "add header"
	RewriteSubject = "rewrite subject"
	NoAction       = "no action"
)

// Result is rspamd's answer.
type Result struct {
	Action   string
	Score    float64
	Required float64
	// Message is what rspamd wants the sender told, "" when it has no
	// preference.
	Message string
	// Subject is the new Subject of a "rewrite subject" action.
	Subject string
	// Add are the header fields to add, Remove those to remove (see Edit).
	Add    []Field
	Remove map[string]int
}

// Field is a header field rspamd asks to add. Order is where: 0 before
// the first field, n before the n+1th; -1 after the last (milter's add).
type Field struct {
	Name, Value string
	Order       int
}

// answer is the JSON of /checkv2, as much of it as facteur uses.
type answer struct {
	Action        string  `json:"action"`
	Score         float64 `json:"score"`
	RequiredScore float64 `json:"required_score"`
	Subject       string  `json:"subject"`
	Messages      struct {
		SMTP string `json:"smtp_message"`
	} `json:"messages"`
	Milter struct {
		Add    map[string]json.RawMessage `json:"add_headers"`
		Remove map[string]int             `json:"remove_headers"`
	} `json:"milter"`
	Error string `json:"error"`
}

// Check sends the message (size bytes read from msg, streamed) with its
// envelope and returns rspamd's verdict. Any failure to get one (rspamd
// down, too slow, an answer that does not parse) is an error.
func (c *Client) Check(ctx context.Context, env Envelope, msg io.Reader, size int64) (*Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.check, io.NopCloser(msg))
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	req.ContentLength = size
	h := req.Header
	h.Set("IP", env.IP.String())
	h.Set("Helo", env.Helo)
	if env.From != "" {
		h.Set("From", env.From)
	}
	for _, r := range env.Rcpts {
		h.Add("Rcpt", r)
	}
	h.Set("Queue-Id", env.QueueID)
	h.Set("MTA-Name", "facteur")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&a); err != nil {
		return nil, fmt.Errorf("rspamd: %s: answer: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || a.Error != "" {
		return nil, fmt.Errorf("rspamd: %s: %s", resp.Status, a.Error)
	}
	if a.Action == "" {
		return nil, errors.New("rspamd: answer without an action")
	}
	r := &Result{Action: a.Action, Score: a.Score, Required: a.RequiredScore, Message: oneLine(a.Messages.SMTP),
		Subject: oneLine(a.Subject), Remove: a.Milter.Remove}
	// In name order: the header written does not vary with map order.
	for _, name := range slices.Sorted(maps.Keys(a.Milter.Add)) {
		fs, err := fields(name, a.Milter.Add[name])
		if err != nil {
			return nil, fmt.Errorf("rspamd: milter.add_headers %s: %w", name, err)
		}
		r.Add = append(r.Add, fs...)
	}
	// A verdict that skipped rspamd's rules (its test patterns, a
	// settings rule) comes without milter headers; the message filed as
	// Junk still says why.
	if r.Junk() && !slices.ContainsFunc(r.Add, func(f Field) bool { return strings.HasPrefix(strings.ToLower(f.Name), "x-spam") }) {
		r.Add = append(r.Add, Field{Name: "X-Spam", Value: "Yes", Order: -1})
	}
	return r, nil
}

// fields reads one entry of milter.add_headers, which rspamd writes as a
// string, as {"value": ..., "order": n}, or as a list of those.
func fields(name string, raw json.RawMessage) ([]Field, error) {
	type ordered struct {
		Value string `json:"value"`
		Order *int   `json:"order"`
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		list = []json.RawMessage{raw}
	}
	var out []Field
	for _, item := range list {
		f := Field{Name: name, Order: -1}
		var o ordered
		switch {
		case json.Unmarshal(item, &f.Value) == nil:
		case json.Unmarshal(item, &o) == nil:
			f.Value = o.Value
			if o.Order != nil && *o.Order >= 0 {
				f.Order = *o.Order
			}
		default:
			return nil, fmt.Errorf("neither a string nor {value, order}: %s", item)
		}
		out = append(out, f)
	}
	return out, nil
}

// oneLine keeps text from rspamd on one line, for a reply or a header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Refusal is a verdict that refuses the message, as an error: reject,
// soft reject or greylist.
type Refusal struct {
	Action  string
	Message string // rspamd's words for the sender, "" when none
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("rspamd: %s: %s", r.Action, r.Message)
}

// Refusal is the result as a refusal, nil when the message is taken.
func (r *Result) Refusal() *Refusal {
	switch r.Action {
	case Reject, SoftReject, Greylist:
		return &Refusal{Action: r.Action, Message: r.Message}
	}
	return nil
}

// Junk tells whether the message is taken as spam: into the Junk folder.
func (r *Result) Junk() bool { return r.Action == AddHeader || r.Action == RewriteSubject }

// Known tells whether the action is one facteur acts on; rspamd can be
// configured with others.
func (r *Result) Known() bool {
	return r.Refusal() != nil || r.Junk() || r.Action == NoAction
}
