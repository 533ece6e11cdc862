// Package smtplog writes an SMTP dialogue to the log at debug level, one
// line per command and one per reply line, so that an operator can see why
// a client or a remote server misbehaves. What is secret or bulky stays
// out: the arguments of AUTH and the exchange that follows it are
// redacted, and message data is summed up by its size.
//
// It reads the bytes each side sent, as they pass, and follows the
// conversation to know what they are: replies come in the order of the
// commands (RFC 2920), so the reply that decides whether what follows DATA
// is message data, or when an AUTH exchange ends, is found by counting.
package smtplog

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// maxLine bounds what is kept, and logged, of one line.
const maxLine = 512

const redacted = "[redacted]"

// state is what the client's next bytes are.
type state int

const (
	commands state = iota
	dataSent       // after DATA, before its reply: data if the reply is 354
	data           // after 354, up to the final dot
	chunk          // BDAT: a counted chunk of data
	auth           // after AUTH, until its final reply: SASL responses
)

// Dialogue is one SMTP conversation. Its methods may be called from any
// goroutine.
type Dialogue struct {
	log *slog.Logger

	mu       sync.Mutex
	cmd, rep lineBuf
	state    state
	// pending counts the commands whose final reply has not come; ahead,
	// in dataSent and auth, those of them sent before DATA or AUTH.
	pending, ahead int
	held           int   // dataSent: lines sent before the reply to DATA
	size           int64 // message data so far
	left           int64 // chunk: bytes still to come
}

// New logs a dialogue on log, whose attributes say which one it is.
func New(log *slog.Logger) *Dialogue { return &Dialogue{log: log} }

// Commands takes bytes the client sent.
func (d *Dialogue) Commands(p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(p) > 0 {
		if d.state == chunk {
			n := min(int64(len(p)), d.left)
			d.size += n
			d.left -= n
			p = p[n:]
			if d.left == 0 {
				d.endData()
			}
			continue
		}
		var line string
		var n int
		if line, n, p = d.cmd.take(p); n > 0 {
			d.command(line, int64(n))
		}
	}
}

// Replies takes bytes the server sent.
func (d *Dialogue) Replies(p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(p) > 0 {
		var line string
		var n int
		if line, n, p = d.rep.take(p); n > 0 {
			d.reply(line)
		}
	}
}

// command takes one line from the client, n bytes long with its end.
func (d *Dialogue) command(line string, n int64) {
	switch d.state {
	case dataSent:
		d.held++
		d.size += n
		return
	case data:
		if line == "." {
			d.endData()
			d.pending++ // the dot is answered like a command
		} else {
			d.size += n
		}
		return
	case auth:
		d.log.Debug("smtp command", "line", redacted)
		return
	}
	verb, args, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "AUTH":
		// The mechanism is worth seeing; an initial response is a secret.
		if mech, rest, _ := strings.Cut(args, " "); rest != "" {
			line = verb + " " + mech + " " + redacted
		}
		d.state, d.ahead = auth, d.pending
	case "DATA":
		d.state, d.ahead, d.held, d.size = dataSent, d.pending, 0, 0
	case "BDAT":
		size, _, _ := strings.Cut(args, " ")
		if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
			d.state, d.left, d.size = chunk, n, 0
		}
	}
	d.log.Debug("smtp command", "line", line)
	d.pending++
	if d.state == chunk && d.left == 0 {
		d.endData()
	}
}

func (d *Dialogue) reply(line string) {
	d.log.Debug("smtp reply", "line", line)
	if len(line) > 3 && line[3] == '-' {
		return // more lines of this reply follow
	}
	code := line[:min(3, len(line))]
	if d.state == auth && code == "334" {
		return // a challenge: the exchange goes on
	}
	if (d.state == dataSent || d.state == auth) && d.ahead > 0 {
		d.ahead--
	} else if d.state == auth {
		d.state = commands
	} else if d.state == dataSent && code == "354" {
		d.state = data
	} else if d.state == dataSent {
		// DATA refused: what the client sent after it are commands,
		// which the server answers; they were held, unseen.
		d.state = commands
		if d.held > 0 {
			d.log.Debug("smtp command", "line", "["+strconv.Itoa(d.held)+" lines sent before the reply to DATA, not logged]")
			d.pending += d.held
		}
	}
	d.pending = max(0, d.pending-1)
}

func (d *Dialogue) endData() {
	d.log.Debug("smtp message data", "bytes", d.size)
	d.state, d.size = commands, 0
}

// lineBuf gathers one side's bytes into lines.
type lineBuf struct {
	buf []byte
	n   int // bytes of the line so far, those beyond maxLine dropped from buf
}

// take adds p up to the end of a line. Once the line is whole, it returns
// it without its end, and its length with the end; the rest of p comes
// back in every case.
func (b *lineBuf) take(p []byte) (line string, n int, rest []byte) {
	i := bytes.IndexByte(p, '\n')
	part := p
	if i >= 0 {
		part, rest = p[:i+1], p[i+1:]
	}
	b.buf = append(b.buf, part[:min(max(0, maxLine-len(b.buf)), len(part))]...)
	b.n += len(part)
	if i < 0 {
		return "", 0, rest
	}
	line = strings.TrimRight(string(b.buf), "\r\n")
	if b.n-len(b.buf) > len("\r\n") {
		line += " [cut: " + strconv.Itoa(b.n) + " bytes in all]"
	}
	n, b.buf, b.n = b.n, b.buf[:0], 0
	return line, n, rest
}
