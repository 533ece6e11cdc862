package smtpd

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// While a message is received, a 4 KiB read takes what the socket holds at
// once: the bytes come out whole and in order, and those read ahead count
// as waiting for the early-data check though the socket is empty.
func TestReadAhead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	c := &conn{Conn: server}
	c.busy.Store(true)

	sent := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
	if _, err := client.Write(sent); err != nil {
		t.Fatal(err)
	}
	// Until the socket holds it all, so that one read can take it.
	deadline := time.Now().Add(5 * time.Second)
	for c.socketHolds() < len(sent) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, 4096)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if c.socketHolds() != 0 {
		t.Fatalf("the socket still holds %d bytes: nothing was read ahead", c.socketHolds())
	}
	if !c.waiting() {
		t.Error("bytes read ahead do not count as waiting")
	}
	rest := make([]byte, len(sent)-len(got))
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), sent) {
		t.Error("the bytes came out changed")
	}
	if c.waiting() || c.ahead.buf != nil {
		t.Error("still waiting, or a buffer kept, once all is read")
	}
}
