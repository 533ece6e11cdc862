package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"facteur/internal/config"
	"facteur/internal/queue"
	"facteur/internal/resolver"
	"facteur/internal/tlsrpt"
)

// skewEnv is for tests only: a duration that facteur's TLS report clock
// runs ahead of the real one, so that an end-to-end test can make the day
// end (restart with "24h") rather than wait for midnight. It is no setting
// and is not documented for users.
const skewEnv = "FACTEUR_TEST_TLSRPT_SKEW"

// openReports prepares the TLS reports (RFC 8460) when outbound.tls_reports
// is on: the counters, kept in <data_dir>/tls-reports, and what sends the
// daily reports through q, which is read when the first one is sent.
func openReports(cfg *config.Config, dnsc *resolver.Resolver, q func() *queue.Queue, log *slog.Logger) (*tlsrpt.Reporter, error) {
	if !cfg.Outbound.TLSReports {
		return nil, nil
	}
	now := time.Now
	if s := os.Getenv(skewEnv); s != "" {
		skew, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", skewEnv, err)
		}
		now = func() time.Time { return time.Now().Add(skew) }
	}
	counter, err := tlsrpt.OpenCounter(filepath.Join(cfg.DataDir, "tls-reports"), now)
	if err != nil {
		return nil, fmt.Errorf("tls reports: %w", err)
	}
	return &tlsrpt.Reporter{
		Counter:   counter,
		Submitter: tlsrpt.Submitter{Hostname: cfg.Hostname, Domain: submitterDomain(cfg.Hostname, cfg.Domains)},
		LookupTXT: dnsc.LookupTXT,
		// From the null sender, as bounces are: a report that cannot be
		// delivered is dropped, never bounced back to us.
		Send: func(rcpts []string, msg []byte) error {
			return q().Enqueue(queue.Message{ID: queue.NewID(), Origin: queue.FromTLSReport, Rcpts: rcpts}, nil, bytes.NewReader(msg), nil)
		},
		Now: now,
		Log: log,
	}, nil
}

// submitterDomain is the domain the reports come from: the local domain
// the host name belongs to (the longest, mx.example.org in example.org),
// whose DKIM key signs them, else the host name itself.
func submitterDomain(hostname string, domains []string) string {
	host := strings.ToLower(hostname)
	best := ""
	for _, d := range domains {
		d = strings.ToLower(d)
		if (host == d || strings.HasSuffix(host, "."+d)) && len(d) > len(best) {
			best = d
		}
	}
	if best == "" {
		return host
	}
	return best
}
