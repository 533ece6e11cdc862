package remote

import (
	"crypto/tls"
	"testing"

	"facteur/internal/smtptest"
)

func TestSTARTTLS(t *testing.T) {
	ca := smtptest.NewCA(t, "mx1.example.test")
	other := smtptest.NewCA(t, "mx1.example.test")
	for _, tc := range []struct {
		name    string
		policy  Policy
		offer   bool
		pool    *smtptest.CA
		status  Status
		tls     bool
		enhance string
	}{
		{"opportunistic offered", Opportunistic, true, nil, Sent, true, ""},
		{"opportunistic not offered", Opportunistic, false, nil, Sent, false, ""},
		{"required offered", Required, true, nil, Sent, true, ""},
		{"required not offered", Required, false, nil, Transient, false, "4.7.4"},
		{"verify good pool", Verify, true, ca, Sent, true, ""},
		{"verify wrong pool", Verify, true, other, Transient, false, "4.7.5"},
		{"verify not offered", Verify, false, ca, Transient, false, "4.7.4"},
		{"none", None, true, nil, Sent, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.client.TLS = tc.policy
			if tc.pool != nil {
				e.client.RootCAs = tc.pool.Pool()
			}
			opts := smtptest.MXOptions{}
			if tc.offer {
				opts.TLS = ca.ServerTLS()
			}
			mx1 := e.mx1(t, opts)
			out := e.deliverSingle(newMsg("q1", "alice@example.test"))
			r := out[0][0]
			if r.Status != tc.status || r.TLS != tc.tls || (tc.enhance != "" && r.Enhanced != tc.enhance) {
				t.Fatalf("result %+v, want %v tls %v %s", r, tc.status, tc.tls, tc.enhance)
			}
			if tc.status == Sent && mx1.Messages()[0].TLS != tc.tls {
				t.Errorf("server saw TLS %v, want %v", mx1.Messages()[0].TLS, tc.tls)
			}
			if tc.status != Sent && mx1.Count() != 0 {
				t.Errorf("delivered despite the policy")
			}
		})
	}
}

// When the handshake fails, Opportunistic delivers in plaintext over a new
// connection rather than not at all.
func TestOpportunisticHandshakeFailure(t *testing.T) {
	e := newEnv(t)
	srvTLS := smtptest.NewCA(t, "mx1.example.test").ServerTLS()
	srvTLS.MinVersion, srvTLS.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 // below our minimum
	mx1 := e.mx1(t, smtptest.MXOptions{TLS: srvTLS})
	r := e.deliverSingle(newMsg("q1", "alice@example.test"))[0][0]
	if r.Status != Sent || r.TLS {
		t.Errorf("result %+v, want sent in plaintext", r)
	}
	if mx1.Connections() != 2 || mx1.Messages()[0].TLS {
		t.Errorf("%d connections, TLS %v; want a second, plaintext one", mx1.Connections(), mx1.Messages()[0].TLS)
	}

	e.client.TLS = Required
	if r := e.deliverSingle(newMsg("q2", "alice@example.test"))[0][0]; r.Status != Transient || r.Enhanced != "4.7.5" {
		t.Errorf("required: %+v, want transient 4.7.5", r)
	}
}
