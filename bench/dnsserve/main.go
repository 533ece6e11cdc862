// Command dnsserve answers TXT questions from a fixed list on UDP and TCP
// of one loopback address, so that the bench can run facteur with SPF,
// DKIM and DMARC checked against the DNS of its senders. Every other
// question gets an empty answer (NODATA).
//
//	dnsserve -addr 127.0.0.1:2553 -txt 'localhost=v=spf1 ip4:127.0.0.1 -all'
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// txts is the -txt flag, repeated: name=text.
type txts map[string][]string

func (t txts) String() string { return fmt.Sprint(map[string][]string(t)) }

func (t txts) Set(s string) error {
	name, text, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not name=text", s)
	}
	k := dns.Fqdn(strings.ToLower(name))
	t[k] = append(t[k], text)
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2553", "`host:port` to answer on, UDP and TCP")
	records := txts{}
	flag.Var(records, "txt", "a TXT record, `name=text` (repeated)")
	flag.Parse()

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		resp.Authoritative = true
		for _, q := range req.Question {
			if q.Qtype != dns.TypeTXT {
				continue
			}
			for _, text := range records[strings.ToLower(q.Name)] {
				resp.Answer = append(resp.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
					Txt: split(text)})
			}
		}
		w.WriteMsg(resp)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *addr, Net: network, Handler: handler}
		go func() { log.Fatal(srv.ListenAndServe()) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

// split cuts text into the strings of at most 255 octets a TXT record holds.
func split(text string) []string {
	var out []string
	for len(text) > 255 {
		out, text = append(out, text[:255]), text[255:]
	}
	return append(out, text)
}
