package smtptest

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// given holds every port FreePortOn returned in this process. A port is
// free when picked but only bound later, by a server the test starts: until
// then another pick would find it free too, and two listeners of one setup
// would get the same port.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePortOn returns a TCP port number that is free on every one of ips at
// once, because remote delivery uses one port number for all the MX hosts,
// and that it never returned before in this process. The port is released
// before returning, so another process could take it in between; nothing
// else on the machine binds fixed ports in this range, so that is rare.
func FreePortOn(t testing.TB, ips ...string) int {
	t.Helper()
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	given.Lock()
	defer given.Unlock()
	// Below Linux's ephemeral range (32768 and up): a port taken from it
	// can be grabbed by any outgoing connection of a test running in
	// parallel between this check and the server's bind.
	for range 200 {
		port := 10000 + rand.IntN(22000)
		if !given.ports[port] && freeOn(port, ips) {
			given.ports[port] = true
			return port
		}
	}
	t.Fatalf("smtptest: no port free on all of %v", ips)
	return 0
}

// freeOn tells whether port can be bound on each of ips.
func freeOn(port int, ips []string) bool {
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
