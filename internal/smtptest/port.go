package smtptest

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// FreePortOn returns a TCP port number that is free on every one of ips at
// once, because remote delivery uses one port number for all the MX hosts.
// The port is released before returning, so another process could take it in
// between; on loopback in a test that is rare enough.
func FreePortOn(t testing.TB, ips ...string) int {
	t.Helper()
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	// Below Linux's ephemeral range (32768 and up): a port taken from it
	// can be grabbed by any outgoing connection of a test running in
	// parallel between this check and the server's bind.
	for range 200 {
		port := 10000 + rand.IntN(22000)
		ok := true
		var ls []net.Listener
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("smtptest: no port free on all of %v", ips)
	return 0
}
