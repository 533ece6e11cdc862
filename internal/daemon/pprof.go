package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// pprofServer serves net/http/pprof for `[debug] pprof`. Profiles show
// message contents in passing (goroutine stacks, heap), so it listens on
// loopback only.
type pprofServer struct {
	srv *http.Server
	l   net.Listener
}

// startPprof binds addr and serves the profiling endpoints on it; an empty
// addr turns it off (nil, nil).
func startPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	if addr == "" {
		return nil, nil
	}
	if err := loopbackOnly(addr); err != nil {
		return nil, fmt.Errorf("debug.pprof: %q: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug.pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{l: l, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	log.Info("pprof listening", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	return p, nil
}

// loopbackOnly accepts "localhost" or a loopback IP literal as the host.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): profiles expose the server's memory")
	}
	return nil
}

// Close stops serving; a nil server is off and closes nothing.
func (p *pprofServer) Close() {
	if p != nil {
		p.srv.Close()
	}
}
