package tlsrpt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// FlushEvery is how often the counts are written, and so at most what a
// crash loses of them; it is also how often ended days are looked for.
const FlushEvery = time.Minute

// keepDays is how long a day's counts wait for their report when the
// policy domain's record cannot be looked up or the report cannot be
// queued; after that they are dropped, as a report that late is of little
// use and the counts must not pile up.
const keepDays = 3

// Reporter counts sessions and, once each UTC day has ended, sends each
// domain that asks for them the report of its day.
type Reporter struct {
	Counter   *Counter
	Submitter Submitter
	// LookupTXT answers like net.Resolver.LookupTXT (*resolver.Resolver
	// does): a name with no records is a *net.DNSError with IsNotFound.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// Send queues msg, from the null sender, to rcpts.
	Send func(rcpts []string, msg []byte) error
	Now  func() time.Time
	Log  *slog.Logger
}

// Run flushes the counts every FlushEvery and sends the reports of the
// days that ended, until ctx ends; then it flushes a last time.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		r.SendEnded(ctx)
		if err := r.Counter.Flush(); err != nil {
			r.Log.Error("tls reports: writing the counts", "err", err)
		}
		select {
		case <-ctx.Done():
			if err := r.Counter.Flush(); err != nil {
				r.Log.Error("tls reports: writing the counts", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// SendEnded sends the reports of every day that ended and clears their
// counts as each is queued.
func (r *Reporter) SendEnded(ctx context.Context) {
	for _, day := range r.Counter.Ended() {
		start, _ := time.Parse(dayLayout, day)
		old := r.Now().Sub(start) > keepDays*24*time.Hour
		for domain, t := range r.Counter.Day(day) {
			if ctx.Err() != nil {
				return
			}
			err := r.send(ctx, domain, start, t)
			if err != nil && !old {
				r.Log.Warn("tls reports: report not sent, tried again later", "domain", domain, "day", day, "err", err)
				continue
			}
			if err != nil {
				r.Log.Warn("tls reports: report dropped after days of failures", "domain", domain, "day", day, "err", err)
			}
			if err := r.Counter.Clear(day, domain); err != nil {
				r.Log.Error("tls reports: clearing the counts", "domain", domain, "day", day, "err", err)
			}
		}
	}
}

// send queues the report on domain's sessions of day to the addresses
// domain publishes. A domain that publishes none asks for no report: nil.
func (r *Reporter) send(ctx context.Context, domain string, day time.Time, t *Tally) error {
	// The record is asked in ASCII, and the report names the domain so.
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = a
	}
	txts, err := r.LookupTXT(ctx, RecordName(domain))
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		txts, err = nil, nil
	}
	if err != nil {
		return err
	}
	rec, err := FindRecord(txts)
	if errors.Is(err, ErrNoRecord) {
		r.Log.Debug("tls reports: the domain asks for none", "domain", domain, "why", err)
		return nil
	}
	if err != nil {
		r.Log.Info("tls reports: unusable record, no report", "domain", domain, "err", err)
		return nil
	}
	if len(rec.Other) > 0 {
		r.Log.Info("tls reports: only mailto: addresses are sent to, the others are ignored", "domain", domain,
			"ignored", strings.Join(rec.Other, ","))
	}
	if len(rec.Mailto) == 0 {
		return nil
	}
	rep := r.Submitter.NewReport(domain, day, t)
	msg, err := r.Submitter.Message(rep, domain, rec.Mailto, r.Now())
	if err != nil {
		return err
	}
	if err := r.Send(rec.Mailto, msg); err != nil {
		return err
	}
	r.Log.Info("tls reports: report queued", "domain", domain, "day", day.Format(dayLayout), "report_id", rep.ReportID,
		"to", strings.Join(rec.Mailto, ","), "policies", len(rep.Policies))
	return nil
}
