package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"facteur/internal/smtptest"
)

// scrape reads one sample of the metrics endpoint; -1 when absent.
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestMetricsCountWhatHappened(t *testing.T) {
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := newRelayWorld(t, "")
	w.twoMX()
	mx := w.mx("127.0.0.2", smtptest.MXOptions{})
	cfg := strings.Replace(readFile(t, w.dir+"/facteur.toml"), "[outbound]", fmt.Sprintf("[metrics]\nlisten = %q\n[outbound]", maddr), 1)
	w.writeFile("facteur.toml", cfg)
	w.start()

	const n = 7
	for range n {
		if err := send(w.smtp, "a@example.org", []string{"alice@example.test"}, message); err != nil {
			t.Fatal(err)
		}
	}
	send(w.smtp, "a@example.org", []string{"nobody@example.test"}, message)
	for range 3 {
		if err := send(w.relay, "alice@example.test", []string{"bob@remote.test"}, message); err != nil {
			t.Fatal(err)
		}
	}
	mx.Wait(t, 3, 20*time.Second)
	w.waitQueue(emptyQueue, "empty")

	for series, want := range map[string]float64{
		`facteur_messages_accepted_total{listener="smtp",tls="false"}`:               n,
		`facteur_messages_accepted_total{listener="relay",tls="false"}`:              3,
		`facteur_messages_refused_total{reason="unknown user"}`:                      1,
		`facteur_deliveries_total{policy="opportunistic",result="sent",tls="false"}`: 3,
		`facteur_queue_messages`: 0,
	} {
		if got := scrape(t, maddr, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if a := scrape(t, maddr, "facteur_delivery_attempt_seconds_count"); a < 1 {
		t.Errorf("no delivery attempt timed: %v", a)
	}
	if c := scrape(t, maddr, `facteur_connections_total{listener="smtp"}`); c < n+1 {
		t.Errorf("smtp connections %v, want at least %d", c, n+1)
	}
	resp, err := http.Get("http://" + maddr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	}
}
