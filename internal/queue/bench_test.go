package queue

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkEnqueue measures the durable enqueue path: one file (envelope
// line, then the message) written, fsync'd and linked into place, and a
// directory fsync shared with concurrent enqueues, per 4 KiB message. Run
// is not started, so nothing is delivered; the (empty) spool is gone
// through first, as Run does, so that enqueues do not note their ids for
// a start-up pass still to come (see Queue.list).
func BenchmarkEnqueue(b *testing.B) {
	q := openQueue(b, testConfig(b.TempDir(), newFake()))
	loadAll(q)
	enqueueAll(b, q)
}

// BenchmarkThrough is the relay's steady state: each 4 KiB message is
// enqueued, delivered (to a transport that takes everything) and leaves
// the spool, its file kept as a spare for a later message.
func BenchmarkThrough(b *testing.B) {
	dir := b.TempDir()
	q := openQueue(b, testConfig(dir, newFake()))
	run(b, q)
	enqueueAll(b, q)
	waitFor(b, "the spool to empty", emptySpool(b, dir))
}

// enqueueAll enqueues b.N messages of 4 KiB from parallel goroutines.
func enqueueAll(b *testing.B, q *Queue) {
	header := []byte("Received: from client.test by mx.facteur.test\r\n")
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64))
	body = body[:4096-len(header)]
	b.SetBytes(int64(len(header) + len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := Message{Origin: FromRelay, ID: NewID(), From: "alice@sender.test", Rcpts: []string{"bob@dest.test"}}
			if err := q.Enqueue(m, header, bytes.NewReader(body), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
