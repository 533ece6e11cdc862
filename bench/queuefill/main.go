// Command queuefill fills a facteur spool with deferred messages through
// the queue's own API, for the bench's deepest queue_depth point: relayed
// through SMTP, 1,000,000 messages take about half an hour here before
// anything is measured. Each message is enqueued (durable, as the relay
// does it) and tried once by a courier that defers every recipient with a
// 451, as a destination down for the day; the next attempt is an hour away.
// It stops the queue cleanly, as a server stopped before its restart.
//
//	queuefill -dir var/queue -n 1000000 -to 'bench@[127.0.0.2]'
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"facteur/internal/queue"
)

// deferAll is a destination down for the day; it counts the attempts.
type deferAll struct{ tried atomic.Int64 }

func (d *deferAll) Deliver(_ context.Context, _ string, parcels []*queue.Parcel) [][]queue.Result {
	out := make([][]queue.Result, len(parcels))
	for i, p := range parcels {
		for range p.Rcpts {
			out[i] = append(out[i], queue.Result{Status: queue.Transient, Code: 451, Enhanced: "4.3.0",
				Text: "queuefill: down for the day", Host: "127.0.0.2"})
		}
	}
	d.tried.Add(int64(len(parcels)))
	return out
}

func main() {
	dir := flag.String("dir", "", "the spool directory (<data_dir>/queue)")
	n := flag.Int("n", 1000, "messages")
	size := flag.Int("size", 4096, "bytes of body")
	to := flag.String("to", "bench@[127.0.0.2]", "the recipient")
	c := flag.Int("c", 512, "messages enqueued at once (they share the syncs)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("queuefill: -dir is required")
	}
	courier := &deferAll{}
	q, err := queue.Open(queue.Config{Dir: *dir, Hostname: "queuefill.invalid", Workers: 16, PerDomain: 16,
		MinBackoff: time.Hour, MaxBackoff: time.Hour, Lifetime: 5 * 24 * time.Hour, Courier: courier,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { q.Run(ctx); close(ran) }()

	start := time.Now()
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", *size/78+1)[:*size]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *c {
		wg.Go(func() {
			for next.Add(1) <= int64(*n) {
				id := queue.NewID()
				header := fmt.Sprintf("From: <bench@localhost>\r\nTo: <%s>\r\nSubject: queuefill\r\nMessage-ID: <%s@queuefill.invalid>\r\n\r\n", *to, id)
				m := queue.Message{ID: id, From: "bench@localhost", Origin: queue.FromRelay, Rcpts: []string{*to}}
				if err := q.Enqueue(m, []byte(header), strings.NewReader(body), nil); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	wg.Wait()
	for courier.tried.Load() < int64(*n) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel() // Run waits for the attempts to be written down
	<-ran
	secs := time.Since(start).Seconds()
	fmt.Printf("msgs=%d secs=%.1f rate=%.1f\n", *n, secs, float64(*n)/secs)
}
