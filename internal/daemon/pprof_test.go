package daemon

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestPprofLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060", "127.0.0.2:0"} {
		if err := loopbackOnly(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "192.0.2.1:6060", "example.org:6060", "6060"} {
		if err := loopbackOnly(a); err == nil {
			t.Errorf("%s: accepted, want an error", a)
		}
	}
}

func TestPprofServes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if p, err := startPprof("", log); p != nil || err != nil {
		t.Fatalf("empty address: %v, %v; want off", p, err)
	}
	if _, err := startPprof("0.0.0.0:0", log); err == nil || !strings.Contains(err.Error(), "debug.pprof") {
		t.Fatalf("non-loopback: %v, want a debug.pprof error", err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	p, err := startPprof(addr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
