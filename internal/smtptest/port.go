package smtptest

import (
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
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("smtptest: listen on %s: %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{first}
		ok := true
		for _, ip := range ips[1:] {
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
