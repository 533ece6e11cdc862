package smtptest

import "io"

// Chunked returns a reader of data that gives at most n bytes per Read, as
// a network connection may: code that parses a stream must not depend on
// where the reads cut it.
func Chunked(data []byte, n int) io.Reader { return &chunked{data: data, n: n} }

type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}
