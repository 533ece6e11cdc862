package durable

import (
	"bufio"
	"io"
	"os"
	"sync"
)

// writers recycles the 64 KiB write buffers: allocating one per message would
// be most of the garbage a busy server makes.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Fill writes header and then everything read from body into the new, empty
// file f, streaming through a buffer sized for mail. It returns the bytes
// written. f is left open and not yet durable: the caller makes it so with
// Mode.Content or Commit. An error from body is returned as is (wrapped by
// the caller), so the caller can tell the client's fault from the disk's.
func Fill(f *os.File, header []byte, body io.Reader) (int64, error) {
	return fill(f, header, body, false)
}

// Refill is Fill for a file that already holds data: it writes from the
// start of f, over the old bytes, and cuts f to what it wrote. Rewriting a
// spent file keeps its inode and blocks, which is much cheaper than creating
// a file and deleting another (see queue's spares).
func Refill(f *os.File, header []byte, body io.Reader) (int64, error) {
	return fill(f, header, body, true)
}

func fill(f *os.File, header []byte, body io.Reader, cut bool) (int64, error) {
	w := writers.Get().(*bufio.Writer)
	// Hiding the file's ReadFrom keeps bufio from bypassing its buffer and
	// handing the body to the file in smaller chunks.
	w.Reset(struct{ io.Writer }{f})
	n, err := w.Write(header)
	written := int64(n)
	if err == nil {
		var m int64
		m, err = io.Copy(w, body)
		written += m
	}
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	writers.Put(w)
	if err == nil && cut {
		err = f.Truncate(written)
	}
	return written, err
}
