package ctl

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"facteur/internal/queue"
)

type fakeQueue struct{ envs []queue.Envelope }

func (f *fakeQueue) List() []queue.Envelope { return f.envs }
func (f *fakeQueue) Flush() int             { return len(f.envs) }
func (f *fakeQueue) Remove(id string) error {
	return fmt.Errorf("%s: %w", id, queue.ErrUnknown)
}

func serveFake(t *testing.T, q Queue) string {
	t.Helper()
	// A unix socket path must be short: t.TempDir's can be too long.
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := Listen(dir, q, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir
}

// The listing goes out envelope by envelope and reads back as one
// Response, whatever its length, an empty queue too.
func TestList(t *testing.T) {
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, n := range []int{0, 1, 5000} {
		q := &fakeQueue{}
		for i := range n {
			q.envs = append(q.envs, queue.Envelope{ID: fmt.Sprintf("%016d", i), From: "a@b.test", Origin: queue.FromRelay, Arrival: at, Size: int64(i),
				Rcpts: []queue.Rcpt{{Addr: "c@d.test", State: queue.Pending, LastError: "<down> & \"out\""}}})
		}
		resp, err := Call(serveFake(t, q), Request{Cmd: "list"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != n || len(resp.Envelopes) != n {
			t.Fatalf("%d messages: count %d, %d envelopes", n, resp.Count, len(resp.Envelopes))
		}
		for i, e := range resp.Envelopes {
			if w := q.envs[i]; e.ID != w.ID || e.Size != w.Size || !e.Arrival.Equal(at) || !slices.Equal(e.Rcpts, w.Rcpts) {
				t.Fatalf("envelope %d = %+v, want %+v", i, e, w)
			}
		}
	}
}

func TestOtherCommands(t *testing.T) {
	dir := serveFake(t, &fakeQueue{envs: make([]queue.Envelope, 3)})
	if resp, err := Call(dir, Request{Cmd: "flush"}); err != nil || resp.Count != 3 {
		t.Errorf("flush = %+v, %v", resp, err)
	}
	if _, err := Call(dir, Request{Cmd: "remove", ID: "X"}); err == nil || err.Error() != "X: "+queue.ErrUnknown.Error() {
		t.Errorf("remove = %v", err)
	}
	if _, err := Call(dir, Request{Cmd: "nope"}); err == nil {
		t.Error("unknown command answered")
	}
	if _, err := Call(filepath.Join(dir, "none"), Request{Cmd: "list"}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no server: %v", err)
	}
}
