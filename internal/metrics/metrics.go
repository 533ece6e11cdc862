// Package metrics counts what facteur does, for Prometheus. Every method
// works on a nil *Metrics and then does nothing, so packages and tests
// that do not care need no setup.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector of one server.
type Metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.CounterVec
	accepted    *prometheus.CounterVec
	refused     *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	attempts    prometheus.Histogram
	dkim        *prometheus.CounterVec
	verdicts    *prometheus.CounterVec
}

// QueueStats reports the queue's size and its oldest message's arrival.
type QueueStats func() (messages int, oldest time.Time)

// New registers the collectors; stats feeds the queue gauges at scrape time.
func New(stats QueueStats) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_connections_total", Help: "SMTP connections accepted, by listener.",
		}, []string{"listener"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_messages_accepted_total", Help: "Messages acknowledged with 250, by listener and TLS.",
		}, []string{"listener", "tls"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_messages_refused_total", Help: "Connections, commands and messages refused, by reason.",
		}, []string{"reason"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_deliveries_total", Help: "Outcomes of delivery attempts per recipient (sent, deferred, bounced), by TLS and the TLS policy in force (dane, mta-sts, opportunistic...).",
		}, []string{"result", "tls", "policy"}),
		dkim: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_dkim_signatures_total", Help: "DKIM signatures made (signed) or that could not be made (failed), by signing domain.",
		}, []string{"domain", "result"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facteur_inbound_verdicts_total", Help: "Verdicts of the checks on mail from the Internet, by check and result.",
		}, []string{"check", "result"}),
		attempts: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "facteur_delivery_attempt_seconds", Help: "Duration of one delivery attempt to one domain.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}),
	}
	m.reg.MustRegister(m.connections, m.accepted, m.refused, m.deliveries, m.attempts, m.dkim, m.verdicts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "facteur_queue_messages", Help: "Messages in the queue.",
		}, func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "facteur_queue_oldest_seconds", Help: "Age of the oldest message in the queue (0 when empty).",
		}, func() float64 {
			if _, oldest := stats(); !oldest.IsZero() {
				return time.Since(oldest).Seconds()
			}
			return 0
		}))
	return m
}

// Connection counts a connection accepted on listener.
func (m *Metrics) Connection(listener string) {
	if m != nil {
		m.connections.WithLabelValues(listener).Inc()
	}
}

// Accepted counts a message acknowledged on listener.
func (m *Metrics) Accepted(listener string, tls bool) {
	if m != nil {
		m.accepted.WithLabelValues(listener, strconv.FormatBool(tls)).Inc()
	}
}

// Refused counts a refusal; reason is one of a fixed set of words.
func (m *Metrics) Refused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// Delivery counts one recipient's attempt outcome: "sent", "deferred" or
// "bounced", with the TLS policy in force ("" when no host was reached).
func (m *Metrics) Delivery(result string, tls bool, policy string) {
	if m != nil {
		m.deliveries.WithLabelValues(result, strconv.FormatBool(tls), policy).Inc()
	}
}

// Attempt records how long one delivery attempt took.
func (m *Metrics) Attempt(d time.Duration) {
	if m != nil {
		m.attempts.Observe(d.Seconds())
	}
}

// DKIMSignature counts one signature by a key of domain: "signed" or
// "failed". Only domains with keys appear, so the label stays bounded.
func (m *Metrics) DKIMSignature(domain, result string) {
	if m != nil {
		m.dkim.WithLabelValues(domain, result).Inc()
	}
}

// InboundVerdict counts one verdict of a check on inbound mail (check
// "dnsbl", "rspamd"...); result is one of the check's fixed set of words.
func (m *Metrics) InboundVerdict(check, result string) {
	if m != nil {
		m.verdicts.WithLabelValues(check, result).Inc()
	}
}

// Handler serves /metrics, and /healthz which answers 200 while healthy
// says so and 503 otherwise.
func (m *Metrics) Handler(healthy func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy() {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
