// Package srs rewrites the envelope sender of forwarded mail with the
// Sender Rewriting Scheme, so that SPF passes where the mail is forwarded
// to, and reads a bounce's recipient back into the original sender:
//
//	alice@example.org  ->  SRS0=HHHHHH=TT=example.org=alice@mx.example.test
//
// HHHHHH signs the rest with a key of ours, TT is the day it was made:
// only addresses we made, in the last MaxAge days, read back, so the
// forwarder is no open relay for bounces.
package srs

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"facteur/internal/durable"
)

// MaxAge is how long a rewritten address reads back: a bounce comes
// within the sender's queue lifetime, days, never weeks.
const MaxAge = 21 * 24 * time.Hour

const (
	prefix = "SRS0="
	// hashLen base32 characters: 30 bits, compared without regard to case
	// because some servers lower-case the addresses they bounce to.
	hashLen = 6
	// The timestamp is the day number modulo 1024, in two base32
	// characters, as every SRS implementation writes it.
	timeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	timeSlots    = 1024
	day          = 24 * time.Hour
)

// ErrInvalid is what Reverse returns for an address that is not one of
// ours: forged, damaged, or too old.
var ErrInvalid = errors.New("srs: not a valid SRS address of ours")

// Rewriter makes and reads SRS addresses at one domain. The key is read
// from its file on first use, and the file made then if it does not exist,
// so that it belongs to the user the server runs as.
type Rewriter struct {
	domain  string
	keyFile string

	mu  sync.Mutex
	key []byte
}

// New is a Rewriter of addresses at domain, keyed by the file keyFile.
func New(domain, keyFile string) *Rewriter {
	return &Rewriter{domain: strings.ToLower(domain), keyFile: keyFile}
}

// NewWithKey is a Rewriter with its key at hand, for tests.
func NewWithKey(domain string, key []byte) *Rewriter {
	return &Rewriter{domain: strings.ToLower(domain), key: key}
}

// Domain is where the rewritten addresses are.
func (r *Rewriter) Domain() string { return r.domain }

// Is tells whether local looks like an SRS0 local part, signed or not.
func Is(local string) bool {
	return len(local) > len(prefix) && strings.EqualFold(local[:len(prefix)], prefix)
}

// Forward rewrites sender (local@domain) into an address at our domain,
// made at now.
func (r *Rewriter) Forward(sender string, now time.Time) (string, error) {
	i := strings.LastIndexByte(sender, '@')
	if i <= 0 || i == len(sender)-1 {
		return "", fmt.Errorf("srs: %q is not an address", sender)
	}
	local, domain := sender[:i], strings.ToLower(sender[i+1:])
	key, err := r.loadKey()
	if err != nil {
		return "", err
	}
	ts := stamp(now)
	return prefix + hash(key, ts, domain, local) + "=" + ts + "=" + domain + "=" + local + "@" + r.domain, nil
}

// Reverse reads local, the local part of an address at our domain, back
// into the sender it was made from, if it is ours and at most MaxAge old
// at now; else it returns ErrInvalid.
func (r *Rewriter) Reverse(local string, now time.Time) (string, error) {
	if !Is(local) {
		return "", ErrInvalid
	}
	parts := strings.SplitN(local[len(prefix):], "=", 4)
	if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
		return "", ErrInvalid
	}
	h, ts, domain, orig := parts[0], parts[1], strings.ToLower(parts[2]), parts[3]
	key, err := r.loadKey()
	if err != nil {
		return "", err
	}
	if !hmac.Equal([]byte(strings.ToUpper(h)), []byte(hash(key, ts, domain, orig))) {
		return "", ErrInvalid
	}
	made, ok := dayOf(ts)
	if !ok {
		return "", ErrInvalid
	}
	// Days since it was made, the day counter having wrapped or not.
	if age := (dayNumber(now) - made + timeSlots) % timeSlots; time.Duration(age)*day > MaxAge {
		return "", ErrInvalid
	}
	return orig + "@" + domain, nil
}

// hash signs the timestamp, domain and local part, all without regard
// to case.
func hash(key []byte, ts, domain, local string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToLower(ts + "\x00" + domain + "\x00" + local)))
	return base32.StdEncoding.EncodeToString(m.Sum(nil))[:hashLen]
}

func dayNumber(t time.Time) int { return int(t.Unix()/int64(day/time.Second)) % timeSlots }

func stamp(t time.Time) string {
	d := dayNumber(t)
	return string([]byte{timeAlphabet[d>>5&31], timeAlphabet[d&31]})
}

func dayOf(ts string) (int, bool) {
	if len(ts) != 2 {
		return 0, false
	}
	hi, lo := strings.IndexByte(timeAlphabet, upper(ts[0])), strings.IndexByte(timeAlphabet, upper(ts[1]))
	if hi < 0 || lo < 0 {
		return 0, false
	}
	return hi<<5 | lo, true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// loadKey reads the key file, or makes it: 32 random bytes, in hex so
// that an operator can copy it to the other MX hosts, which must share it
// to read back each other's addresses.
func (r *Rewriter) loadKey() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.key != nil {
		return r.key, nil
	}
	data, err := os.ReadFile(r.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, 32)
		rand.Read(k)
		if err := durable.WriteFile(r.keyFile, []byte(hex.EncodeToString(k)+"\n")); err != nil {
			return nil, fmt.Errorf("srs: make the key: %w", err)
		}
		data, err = os.ReadFile(r.keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("srs: %w", err)
	}
	key := []byte(strings.TrimSpace(string(data)))
	if len(key) < 16 {
		return nil, fmt.Errorf("srs: key file %s holds less than 16 characters", r.keyFile)
	}
	r.key = key
	return key, nil
}
