package daemon

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"time"

	"facteur/internal/dkim"
	"facteur/internal/metrics"
	"facteur/internal/queue"
)

// signer DKIM-signs mail as it goes out to remote domains. Signing at each
// attempt, not at enqueue, keeps a retry days later within the signature's
// expiry and lets a new key apply at once; it costs a second read of the
// queued message and one signature per attempt, and nothing at all while
// no key is configured.
type signer struct {
	// keys are the keys in force and the signatures' lifetime (0: none).
	keys    func() (*dkim.Keys, time.Duration)
	metrics *metrics.Metrics
	log     *slog.Logger
}

// deliver hands msgs to send with the messages that are ours to sign
// (queue.Parcel.DKIM) opening with their DKIM-Signature fields first,
// and names the signatures in the results, for the delivery log.
func (s *signer) deliver(msgs []*queue.Parcel, send func([]*queue.Parcel) [][]queue.Result) [][]queue.Result {
	ks, expiration := s.keys()
	if ks.Len() == 0 {
		return send(msgs)
	}
	names := make([]string, len(msgs))
	for i, m := range msgs {
		if !m.DKIM {
			continue
		}
		open, size := m.Open, m.Size
		m.Open = func() (io.ReadCloser, error) {
			sig, err := s.sign(ks, expiration, m.ID, open)
			if err != nil {
				return nil, err
			}
			r, err := open()
			if err != nil || sig.Header == nil {
				return r, err
			}
			names[i] = sig.Names()
			// SIZE= counts the signatures: Open comes before MAIL.
			m.Size = size + int64(len(sig.Header))
			return struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(sig.Header), r), r}, nil
		}
	}
	out := send(msgs)
	for i, n := range names {
		for j := range out[i] {
			if n != "" {
				out[i][j].Log = append(out[i][j].Log, "dkim", n)
			}
		}
	}
	return out
}

// sign reads the message through open and signs it. A signature that
// cannot be made fails the attempt, so that the message waits for a later
// one rather than going out unsigned.
func (s *signer) sign(ks *dkim.Keys, expiration time.Duration, id string, open func() (io.ReadCloser, error)) (*dkim.Signed, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sig, err := ks.Sign(r, expiration)
	if err != nil {
		if sig != nil {
			for _, k := range sig.Keys {
				s.metrics.DKIMSignature(k.Domain, "failed")
			}
		}
		s.log.Error("dkim: cannot sign, message deferred", "id", id, "err", err)
		return nil, fmt.Errorf("DKIM signing: %w", err)
	}
	if len(sig.Keys) == 0 {
		s.log.Debug("dkim: no key for the From domain, sent unsigned", "id", id, "from_domain", sig.Domain)
	}
	for _, k := range sig.Keys {
		s.metrics.DKIMSignature(k.Domain, "signed")
	}
	return sig, nil
}
