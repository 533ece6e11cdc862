package daemon

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"facteur/internal/dkim"
	"facteur/internal/queue"
)

func testKeys(t *testing.T) *dkim.Keys {
	t.Helper()
	dir := t.TempDir()
	s, err := dkim.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dkim.Write(dir, "example.org", "sel", s, -1, -1); err != nil {
		t.Fatal(err)
	}
	ks, err := dkim.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func message(id, data string, sign bool) *queue.Parcel {
	return &queue.Parcel{ID: id, Rcpts: []string{"x@remote.test"}, Size: int64(len(data)), DKIM: sign,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(data)), nil }}
}

// sendAll stands for the SMTP client: it reads each message as it would.
func sendAll(t *testing.T, got map[string]string) func([]*queue.Parcel) [][]queue.Result {
	return func(msgs []*queue.Parcel) [][]queue.Result {
		out := make([][]queue.Result, len(msgs))
		for i, m := range msgs {
			r, err := m.Open()
			if err != nil {
				out[i] = []queue.Result{{Status: queue.Transient, Text: err.Error()}}
				continue
			}
			b, _ := io.ReadAll(r)
			r.Close()
			got[m.ID] = string(b)
			if int64(len(b)) != m.Size {
				t.Errorf("%s: SIZE %d for %d bytes", m.ID, m.Size, len(b))
			}
			out[i] = []queue.Result{{Status: queue.Delivered}}
		}
		return out
	}
}

func TestSignerSignsOnlyWhatIsOurs(t *testing.T) {
	ks := testKeys(t)
	s := &signer{keys: func() (*dkim.Keys, time.Duration) { return ks, time.Hour }, log: slog.New(slog.DiscardHandler)}
	const ours = "From: a@mx.example.org\r\n\r\nbody\r\n"
	const other = "From: a@elsewhere.test\r\n\r\nbody\r\n"
	got := map[string]string{}
	out := s.deliver([]*queue.Parcel{message("signed", ours, true), message("forwarded", ours, false), message("nokey", other, true)},
		sendAll(t, got))
	if !strings.HasPrefix(got["signed"], "DKIM-Signature: ") || !strings.HasSuffix(got["signed"], "\r\n"+ours) ||
		!strings.Contains(got["signed"], "d=example.org;") {
		t.Errorf("signed message:\n%s", got["signed"])
	}
	if got["forwarded"] != ours || got["nokey"] != other {
		t.Errorf("changed what is not ours to sign, or has no key:\n%s\n%s", got["forwarded"], got["nokey"])
	}
	if !slices.Equal(out[0][0].Log, []any{"dkim", "example.org/sel"}) || out[1][0].Log != nil || out[2][0].Log != nil {
		t.Errorf("results log %v, %v, %v", out[0][0].Log, out[1][0].Log, out[2][0].Log)
	}
}
