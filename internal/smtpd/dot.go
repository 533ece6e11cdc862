package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"unsafe"

	"github.com/emersion/go-smtp"
)

// dotReader reads the data of a DATA command (RFC 5321 4.5.2: leading dots
// removed, up to the line "."), as go-smtp's own reader does, but a
// buffer at a time where go-smtp's goes a byte at a time, a function call
// each: for large messages that was most of the server's CPU, more than
// the disk's writes cost.
//
// It reads from go-smtp's buffered reader of the connection and leaves
// the end line ".\r\n" there, so that go-smtp's reader, which has seen
// nothing yet and so is at a line start, reads that line and ends: go-smtp
// and the next command find the stream where they would have. For that
// the session must read it up to the end (drain) before its Data returns.
type dotReader struct {
	br *bufio.Reader
	// start: the next byte begins a line (after CRLF, as go-smtp has it: a
	// bare LF does not end a line). cr: the last byte read was a CR.
	start, cr bool
	end       bool  // the end line is next in br
	left      int64 // bytes that may be read yet, if limited
	limited   bool
}

// newDotReader returns a reader of the data that r, go-smtp's reader of
// it, would give, or r itself when r is not one whose buffer it can take.
// limit is the server's MaxMessageBytes, which go-smtp's reader enforces.
func newDotReader(r io.Reader, limit int64) (io.Reader, *dotReader) {
	br := smtpBuffer(r)
	if br == nil {
		return r, nil
	}
	d := &dotReader{br: br, start: true, left: limit, limited: limit > 0}
	return d, d
}

// smtpBuffer is the *bufio.Reader go-smtp's DATA reader (its unexported
// dataReader, field r) reads from, nil if r is not one: go-smtp has no
// other way to the bytes after DATA. The test of this file fails if a
// go-smtp upgrade renames them.
func smtpBuffer(r io.Reader) *bufio.Reader {
	v := reflect.ValueOf(r)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	t := v.Type().Elem()
	if t.PkgPath() != reflect.TypeFor[smtp.Conn]().PkgPath() || t.Name() != "dataReader" {
		return nil
	}
	f := v.Elem().FieldByName("r")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*bufio.Reader]() {
		return nil
	}
	return *(**bufio.Reader)(unsafe.Pointer(f.UnsafeAddr()))
}

func (d *dotReader) Read(p []byte) (int, error) {
	if d.end {
		return 0, io.EOF
	}
	if !d.limited {
		return d.read(p)
	}
	if d.left <= 0 {
		return 0, smtp.ErrDataTooLarge
	}
	n, err := d.read(p[:min(int64(len(p)), d.left)])
	d.left -= int64(n)
	return n, err
}

func (d *dotReader) read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		// Block for more only when nothing was read yet.
		if n > 0 && d.br.Buffered() == 0 {
			break
		}
		if d.start {
			// ".\r\n" ends the data; a line's other leading dot is
			// dropped.
			b, err := d.br.Peek(3)
			if len(b) > 0 && b[0] == '.' {
				if len(b) == 3 && b[1] == '\r' && b[2] == '\n' {
					d.end = true
					if n == 0 {
						return 0, io.EOF
					}
					break
				}
				d.br.Discard(1)
				d.start = false
				continue
			}
			if len(b) == 0 {
				return n, unexpected(err)
			}
		}
		b, err := d.br.Peek(max(1, d.br.Buffered()))
		if len(b) == 0 {
			return n, unexpected(err)
		}
		b = b[:min(len(b), len(p)-n)]
		k := d.take(b)
		n += copy(p[n:], b[:k])
		d.br.Discard(k)
	}
	return n, nil
}

// take returns how many bytes of b, which does not begin with a line's
// leading dot, go to the reader as they are: up to the start of the next
// line that begins with a dot, or all of b. It keeps start and cr.
func (d *dotReader) take(b []byte) int {
	k := 0
	for {
		i := bytes.IndexByte(b[k:], '\n')
		if i < 0 {
			d.start, d.cr = false, b[len(b)-1] == '\r'
			return len(b)
		}
		lf := k + i
		k = lf + 1
		crlf := lf > 0 && b[lf-1] == '\r' || lf == 0 && d.cr
		d.start, d.cr = crlf, false
		if crlf && (k == len(b) || b[k] == '.') {
			return k
		}
	}
}

// drain reads the rest of the data, past any limit, as go-smtp does after
// Data returns: the end line is then what go-smtp finds next.
func (d *dotReader) drain() {
	d.limited = false
	io.Copy(io.Discard, d)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
