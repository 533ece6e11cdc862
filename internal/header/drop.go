package header

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Drop returns a reader of r's bytes without the header fields called
// name (any case) whose value drop approves; every other byte, the body
// included, passes unchanged. Only a field called name is held, until its
// last continuation line is read; one over MaxWatched fails with
// ErrTooLong.
func Drop(r io.Reader, name string, drop func(value string) bool) io.Reader {
	return &dropper{br: bufio.NewReaderSize(r, 4096), name: name, drop: drop}
}

type dropper struct {
	br     *bufio.Reader
	name   string
	drop   func(string) bool
	line   []byte // the line being read
	out    []byte // read but not yet returned
	held   []byte // a field called name, while its lines come
	inBody bool
	err    error
}

func (d *dropper) Read(p []byte) (int, error) {
	for len(d.out) == 0 && !d.inBody && d.err == nil {
		d.err = d.next()
	}
	if len(d.out) > 0 {
		n := copy(p, d.out)
		d.out = d.out[n:]
		return n, nil
	}
	if d.err != nil {
		return 0, d.err
	}
	return d.br.Read(p)
}

// next reads one header line and decides what of it goes out.
func (d *dropper) next() error {
	chunk, err := d.br.ReadSlice('\n')
	d.line = append(d.line[:0], chunk...)
	for errors.Is(err, bufio.ErrBufferFull) {
		chunk, err = d.br.ReadSlice('\n')
		d.line = append(d.line, chunk...)
	}
	if err != nil && err != io.EOF {
		return err
	}
	l := d.line
	if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') && d.held != nil {
		if d.held = append(d.held, l...); len(d.held) > MaxWatched {
			return ErrTooLong
		}
	} else if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
		d.out = append(d.out, l...)
	} else {
		d.settle()
		switch n, _, _ := bytes.Cut(l, []byte(":")); {
		case len(bytes.TrimRight(l, "\r\n")) == 0:
			d.inBody = len(l) > 0
			d.out = append(d.out, l...)
		case strings.EqualFold(string(bytes.TrimSpace(n)), d.name):
			d.held = append([]byte(nil), l...)
		default:
			d.out = append(d.out, l...)
		}
	}
	if err == io.EOF {
		d.settle()
	}
	return err
}

// settle lets the held field out unless drop approves it.
func (d *dropper) settle() {
	if d.held == nil {
		return
	}
	_, value, _ := bytes.Cut(d.held, []byte(":"))
	if !d.drop(strings.Join(strings.Fields(string(value)), " ")) {
		d.out = append(d.out, d.held...)
	}
	d.held = nil
}
