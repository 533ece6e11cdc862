package smtpd

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// maxFailures in a row from one address close its connection with a 421.
const maxFailures = 10

// failures counts failed logins per client address, so that guessing
// gets slower with every miss and a guesser is cut off. A success clears
// the address; entries idle for an hour are forgotten.
type failures struct {
	mu sync.Mutex
	by map[netip.Addr]*failure
}

type failure struct {
	n    int
	last time.Time
}

// fail records a failed login and returns how many in a row.
func (f *failures) fail(ip netip.Addr, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[netip.Addr]*failure{}
	}
	for a, e := range f.by {
		if now.Sub(e.last) > time.Hour {
			delete(f.by, a)
		}
	}
	e := f.by[ip]
	if e == nil {
		e = &failure{}
		f.by[ip] = e
	}
	e.n++
	e.last = now
	return e.n
}

func (f *failures) clear(ip netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.by, ip)
}

// AuthMechanisms is what EHLO advertises: nothing where AUTH is not
// offered, and nothing before TLS unless the client is on loopback
// (RFC 4954 section 4: no plaintext passwords over the network).
func (s *session) AuthMechanisms() []string {
	if !s.auth || !s.secure() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// secure tells whether a password may be sent here.
func (s *session) secure() bool {
	_, isTLS := s.c.TLSConnectionState()
	return isTLS || s.srv.opts.PlaintextAuth(s.conn.ip)
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case !s.auth:
		return nil, reply(502, 5, 1, "AUTH is not offered on this port")
	case !s.secure():
		return nil, reply(538, 7, 11, "Encryption required: use STARTTLS first")
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, password string) error {
			if identity != "" && identity != user {
				return s.loginFailed(user, "authorization identity differs")
			}
			return s.login(user, password)
		}), nil
	case sasl.Login:
		return &loginServer{login: s.login}, nil
	}
	return nil, reply(504, 5, 4, "Unrecognized authentication mechanism")
}

func (s *session) login(user, password string) error {
	if !s.srv.passwords().Check(user, password) {
		return s.loginFailed(user, "wrong user or password")
	}
	s.srv.fails.clear(s.conn.ip)
	s.authUser = user
	s.log.Info("authenticated", "user", user)
	return nil
}

// loginFailed slows the client down, more with each failure in a row from
// its address, and hangs up on the tenth.
func (s *session) loginFailed(user, why string) error {
	n := s.srv.fails.fail(s.conn.ip, time.Now())
	s.log.Warn("authentication failed", "user", printable(user), "remote", s.conn.ip.String(), "failures", n, "reason", why)
	time.Sleep(s.srv.opts.AuthFailDelay * time.Duration(min(n, maxFailures)))
	if n >= maxFailures {
		s.conn.hangUp.Store(true)
		return reply(421, 7, 0, "Too many failed logins, closing connection")
	}
	return reply(535, 7, 8, "Authentication credentials invalid")
}

// loginServer is the server side of the LOGIN mechanism (obsolete, but
// what many mail clients still send): it asks for the user name, then the
// password, each base64 in a 334 challenge.
type loginServer struct {
	login func(user, password string) error
	user  []byte
	asked bool // "Username:" sent or the user came with AUTH LOGIN <user>
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case l.user == nil && len(response) == 0 && !l.asked:
		l.asked = true
		return []byte("Username:"), false, nil
	case l.user == nil:
		l.user = bytes.Clone(response)
		l.asked = true
		return []byte("Password:"), false, nil
	}
	return nil, true, l.login(string(l.user), string(response))
}
