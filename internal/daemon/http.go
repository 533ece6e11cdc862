package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serveHTTP binds addr for a small HTTP endpoint (metrics, pprof) and
// serves h on it; an empty addr turns it off (nil, nil). Binding happens
// here so that a taken port stops start-up like any listener's.
func serveHTTP(key, addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http endpoint stopped", "key", key, "addr", l.Addr().String(), "err", err)
		}
	}()
	log.Info("http endpoint listening", "key", key, "addr", l.Addr().String())
	return srv, nil
}
