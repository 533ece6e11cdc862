package header

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"facteur/internal/smtptest"
)

const msg = "Received: from a\r\n\tby b\r\nFrom: Alice\r\n <alice@example.org>\r\nfrom : bob@example.org\r\n" +
	"no colon here\r\nSubject: hi\r\n\r\nFrom: not a header\r\nbody\r\n"

func TestReadStopsAtTheEmptyLine(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(msg), 16) // lines longer than the buffer
	raw, fields, ended, err := Read(br)
	if err != nil || !ended {
		t.Fatal(ended, err)
	}
	if want := msg[:strings.Index(msg, "\r\n\r\n")+4]; string(raw) != want {
		t.Errorf("raw %q, want %q", raw, want)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.Name+"="+f.Value)
	}
	if strings.Join(got, "|") != "Received=from a by b|From=Alice <alice@example.org>|from=bob@example.org|Subject=hi" {
		t.Errorf("fields %q", got)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "From: not a header\r\nbody\r\n" {
		t.Errorf("body %q", rest)
	}
}

func TestReadAllHeader(t *testing.T) {
	raw, fields, ended, err := Read(bufio.NewReader(strings.NewReader("From: a@b.test\r\nSubject: x")))
	if err != nil || ended || string(raw) != "From: a@b.test\r\nSubject: x" || len(fields) != 2 || fields[1].Value != "x" {
		t.Errorf("%q %v %t %v", raw, fields, ended, err)
	}
}

func TestWatchSeesFieldsAcrossReads(t *testing.T) {
	var calls [][]string
	r := Watch(iotest.OneByteReader(strings.NewReader(msg)), "FROM", func(v []string) error {
		calls = append(calls, v)
		return nil
	})
	out, err := io.ReadAll(r)
	if err != nil || string(out) != msg {
		t.Fatalf("read %q, %v", out, err)
	}
	if len(calls) != 1 || strings.Join(calls[0], "|") != "Alice <alice@example.org>|bob@example.org" {
		t.Errorf("check called with %q", calls)
	}
}

func TestWatchErrorStopsTheStream(t *testing.T) {
	refused := errors.New("refused")
	body := strings.Repeat("x", 1<<20)
	r := Watch(strings.NewReader("From: a@b.test\r\n\r\n"+body), "From", func([]string) error { return refused })
	n, err := io.Copy(io.Discard, r)
	if !errors.Is(err, refused) || n != 0 {
		t.Errorf("copied %d bytes, %v; want nothing and the check's error", n, err)
	}
}

func TestWatchChecksAtEOFWithinHeader(t *testing.T) {
	called := false
	r := Watch(strings.NewReader("Subject: x\r\nFrom: a@b.test"), "from", func(v []string) error {
		called = len(v) == 1 && v[0] == "a@b.test"
		return nil
	})
	if _, err := io.ReadAll(r); err != nil || !called {
		t.Errorf("err %v, check called right: %t", err, called)
	}
}

func TestWatchBoundsWhatItKeeps(t *testing.T) {
	long := "From: a@b.test\r\n" + strings.Repeat(" , c@d.test\r\n", MaxWatched/12) + "\r\nbody\r\n"
	r := Watch(strings.NewReader(long), "from", func([]string) error { return nil })
	if _, err := io.ReadAll(r); !errors.Is(err, ErrTooLong) {
		t.Errorf("err %v, want ErrTooLong", err)
	}
	// Other fields, however long, are not kept.
	other := strings.Repeat("X-Long: "+strings.Repeat("y", 900)+"\r\n", 200) + "From: a@b.test\r\n\r\nbody\r\n"
	r = Watch(strings.NewReader(other), "from", func([]string) error { return nil })
	if _, err := io.ReadAll(r); err != nil {
		t.Error(err)
	}
}

func TestAddressesAnyCharset(t *testing.T) {
	addrs, err := Addresses(`=?windows-1252?Q?Andr=E9?= <andre@example.org>, "Bob" <bob@Example.ORG>`)
	if err != nil || len(addrs) != 2 || addrs[0].Address != "andre@example.org" || addrs[1].Address != "bob@Example.ORG" {
		t.Errorf("%v, %v", addrs, err)
	}
	if _, err := Addresses("not an address"); err == nil {
		t.Error("garbage parsed")
	}
}

// FuzzWatchAgreesWithRead: however the bytes are cut into reads, Watch
// passes them through unchanged and sees the same From values as Read.
func FuzzWatchAgreesWithRead(f *testing.F) {
	f.Add([]byte(msg), uint8(7))
	f.Add([]byte("From: a@b\r\n continued\r\n\r\n"), uint8(1))
	f.Add([]byte("From: a@b"), uint8(3))
	f.Add([]byte("\r\nFrom: body"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		_, fields, _, err := Read(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, fl := range fields {
			if strings.EqualFold(fl.Name, "from") {
				want = append(want, fl.Value)
			}
		}
		var got []string
		calls := 0
		r := Watch(smtptest.Chunked(data, int(cut%16)+1), "from", func(v []string) error {
			got, calls = v, calls+1
			return nil
		})
		out, err := io.ReadAll(r)
		if errors.Is(err, ErrTooLong) {
			return
		}
		if err != nil || !bytes.Equal(out, data) || calls != 1 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("Watch: %v, %d calls, %q; Read: %q", err, calls, got, want)
		}
	})
}
