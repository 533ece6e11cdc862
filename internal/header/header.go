// Package header reads the header section of a message (RFC 5322 2.2):
// whole from a spooled copy, or field by field as the message streams past,
// and the addresses of fields such as From.
package header

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// Field is one header field, its continuation lines joined.
type Field struct {
	Name  string // as written, without surrounding space
	Value string // after the colon, line breaks and surrounding space removed
}

// Read reads the header section from br, up to and including the empty
// line that ends it, and returns its bytes as read and its fields; the body
// is what br holds next. A message that ends within its header has no body:
// ended is false, and raw is all of it.
func Read(br *bufio.Reader) (raw []byte, fields []Field, ended bool, err error) {
	var p parser
	for {
		start := len(raw)
		var chunk []byte
		for chunk, err = br.ReadSlice('\n'); ; chunk, err = br.ReadSlice('\n') {
			raw = append(raw, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		line := raw[start:]
		if err == io.EOF {
			if len(line) > 0 {
				p.line(line)
			}
			return raw, p.fields, false, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		if p.line(line) {
			return raw, p.fields, true, nil
		}
	}
}

// parser turns header lines into fields, keeping only those named in keep
// (all when keep is nil).
type parser struct {
	keep   func(name string) bool
	fields []Field
	cont   bool // continuation lines add to the last field
}

// line takes one line, with or without its line ending, and reports
// whether it was the empty line that ends the header section.
func (p *parser) line(l []byte) (end bool) {
	l = bytes.TrimRight(l, "\r\n")
	switch {
	case len(l) == 0:
		return true
	case l[0] == ' ' || l[0] == '\t':
		if p.cont {
			f := &p.fields[len(p.fields)-1]
			f.Value = strings.TrimSpace(f.Value + " " + strings.TrimSpace(string(l)))
		}
		return false
	}
	name, value, ok := bytes.Cut(l, []byte(":"))
	n := string(bytes.TrimSpace(name))
	p.cont = ok && (p.keep == nil || p.keep(n))
	if p.cont {
		p.fields = append(p.fields, Field{Name: n, Value: strings.TrimSpace(string(value))})
	}
	return false
}

// MaxWatched bounds what Watch keeps of the watched fields.
const MaxWatched = 64 << 10

// ErrTooLong is returned when the fields Watch keeps exceed MaxWatched.
var ErrTooLong = errors.New("header fields too long to check")

// Watch returns a reader of r's bytes that, as the header section goes
// past, keeps the values of the fields called name (any case) and, once the
// section ends (or r does), calls check with them once; an error from check
// is then returned by Read, and by every Read after. Nothing of the body is
// held.
func Watch(r io.Reader, name string, check func(values []string) error) io.Reader {
	return WatchFields(r, func(n string) bool { return strings.EqualFold(n, name) }, func(fields []Field) error {
		values := make([]string, len(fields))
		for i, f := range fields {
			values[i] = f.Value
		}
		return check(values)
	})
}

// WatchFields is Watch for the fields that keep says yes to, called once
// with each field's name as the header section goes past, in order.
func WatchFields(r io.Reader, keep func(name string) bool, check func(fields []Field) error) io.Reader {
	return &watcher{r: r, check: check, p: parser{keep: keep}}
}

type watcher struct {
	r     io.Reader
	check func([]Field) error
	p     parser
	line  []byte // the current header line so far
	kept  int
	done  bool // the header section has ended and check ran
	err   error
}

func (w *watcher) Read(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.r.Read(b)
	if !w.done {
		w.err = w.scan(b[:n])
		if w.err == nil && err == io.EOF && !w.done {
			if len(w.line) > 0 {
				w.p.line(w.line)
			}
			w.err = w.finish()
		}
		if w.err != nil {
			return 0, w.err
		}
	}
	return n, err
}

// scan feeds b to the parser line by line, until the header section ends.
func (w *watcher) scan(b []byte) error {
	for len(b) > 0 && !w.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.line = append(w.line, b...)
			return w.bound(0)
		}
		w.line = append(w.line, b[:i+1]...)
		b = b[i+1:]
		end := w.p.line(w.line)
		if w.p.cont { // a watched field's line
			if err := w.bound(len(w.line)); err != nil {
				return err
			}
		}
		w.line = w.line[:0]
		if end {
			return w.finish()
		}
	}
	return nil
}

// bound counts n more octets kept, and fails when the line being read or
// the fields kept grow past MaxWatched.
func (w *watcher) bound(n int) error {
	w.kept += n
	if w.kept+len(w.line) > MaxWatched {
		return ErrTooLong
	}
	return nil
}

func (w *watcher) finish() error {
	w.done = true
	w.line = nil
	return w.check(w.p.fields)
}

// Addresses parses an address-list field value such as From's. Display
// names in any charset are accepted: only the addresses matter here.
func Addresses(value string) ([]*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
	}}
	return p.ParseList(value)
}
