package header

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDrop(t *testing.T) {
	in := "X-A: keep\r\n" +
		"X-Drop: yes\r\n" +
		"X-Drop: no,\r\n\tfolded\r\n" +
		"x-drop:\r\n yes\r\n" +
		"X-B: keep\r\n continued\r\n" +
		"\r\n" +
		"X-Drop: yes in the body\r\n"
	want := "X-A: keep\r\n" +
		"X-Drop: no,\r\n\tfolded\r\n" +
		"X-B: keep\r\n continued\r\n" +
		"\r\n" +
		"X-Drop: yes in the body\r\n"
	var seen []string
	drop := func(v string) bool { seen = append(seen, v); return strings.HasPrefix(v, "yes") }
	// One byte at a time too: fields must not depend on where reads end.
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		seen = nil
		got, err := io.ReadAll(Drop(r, "X-Drop", drop))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("got\n%q, want\n%q", got, want)
		}
		if strings.Join(seen, "|") != "yes|no, folded|yes" {
			t.Errorf("values seen %q", seen)
		}
	}
}

func TestDropAtEnd(t *testing.T) {
	for in, want := range map[string]string{
		"A: 1\r\nX-Drop: yes":     "A: 1\r\n",
		"A: 1\r\nX-Drop: no\r\n":  "A: 1\r\nX-Drop: no\r\n",
		"X-Drop: yes\r\n\r\nbody": "\r\nbody",
		"":                        "",
	} {
		got, err := io.ReadAll(Drop(strings.NewReader(in), "X-Drop", func(v string) bool { return v == "yes" }))
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q, %v, want %q", in, got, err, want)
		}
	}
}

func TestDropTooLong(t *testing.T) {
	in := "X-Drop: a\r\n" + strings.Repeat(" aaaaaaaaaa\r\n", MaxWatched/10) + "\r\n"
	_, err := io.ReadAll(Drop(strings.NewReader(in), "X-Drop", func(string) bool { return true }))
	if err != ErrTooLong {
		t.Errorf("err = %v, want ErrTooLong", err)
	}
}
