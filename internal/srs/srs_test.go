package srs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func TestRoundTrip(t *testing.T) {
	r := NewWithKey("MX.Example.Test", []byte("0123456789abcdef0123456789abcdef"))
	addr, err := r.Forward("Alice.B+x@Example.ORG", now)
	if err != nil {
		t.Fatal(err)
	}
	local, domain, _ := strings.Cut(addr, "@")
	if domain != "mx.example.test" || !strings.HasPrefix(local, "SRS0=") || !strings.HasSuffix(local, "=example.org=Alice.B+x") {
		t.Fatalf("rewritten: %s", addr)
	}
	for _, l := range []string{local, strings.ToLower(local), strings.ToUpper(local[:5]) + local[5:]} {
		got, err := r.Reverse(l, now.Add(MaxAge))
		if err != nil || !strings.EqualFold(got, "Alice.B+x@example.org") {
			t.Errorf("%s: %q %v", l, got, err)
		}
	}
	// A local part with '=' in it comes back whole.
	addr, _ = r.Forward("a=b@example.org", now)
	local, _, _ = strings.Cut(addr, "@")
	if got, err := r.Reverse(local, now); err != nil || got != "a=b@example.org" {
		t.Errorf("a=b: %q %v", got, err)
	}
}

func TestForgedAndExpired(t *testing.T) {
	r := NewWithKey("mx.example.test", []byte("0123456789abcdef0123456789abcdef"))
	addr, _ := r.Forward("alice@example.org", now)
	local, _, _ := strings.Cut(addr, "@")
	other := NewWithKey("mx.example.test", []byte("another key, another forwarder!!"))
	hashed := strings.SplitN(local, "=", 3)
	for name, l := range map[string]string{
		"other sender":   strings.Replace(local, "=alice", "=mallory", 1),
		"other domain":   strings.Replace(local, "=example.org=", "=example.net=", 1),
		"other hash":     "SRS0=AAAAAA=" + hashed[2],
		"no hash":        "SRS0==" + hashed[2],
		"cut short":      "SRS0=" + hashed[1],
		"not SRS":        "alice",
		"empty sender":   strings.TrimSuffix(local, "alice"),
		"bad timestamp":  strings.Replace(local, "="+stamp(now)+"=", "=1!=", 1),
		"day after 21":   local, // checked below at now + 22 days
		"another's hash": "",
	} {
		at := now
		switch name {
		case "day after 21":
			at = now.Add(MaxAge + day)
		case "another's hash":
			a, _ := other.Forward("alice@example.org", now)
			l, _, _ = strings.Cut(a, "@")
		}
		if got, err := r.Reverse(l, at); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s (%s): %q %v, want ErrInvalid", name, l, got, err)
		}
	}
	// The day counter wraps every 1024 days: a fresh address made just
	// after the wrap is still good.
	wrap := time.Unix(21*timeSlots*86400, 0).UTC() // day 21 * 1024: slot 0
	addr, _ = r.Forward("alice@example.org", wrap.Add(-day))
	local, _, _ = strings.Cut(addr, "@")
	if _, err := r.Reverse(local, wrap.Add(day)); err != nil {
		t.Errorf("across the wrap: %v", err)
	}
}

func TestKeyFileMadeOnFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "srs.key")
	r := New("mx.example.test", path)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file made before use: %v", err)
	}
	addr, err := r.Forward("alice@example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// Another process with the same file reads the addresses back.
	local, _, _ := strings.Cut(addr, "@")
	if got, err := New("mx.example.test", path).Reverse(local, now); err != nil || got != "alice@example.org" {
		t.Errorf("second rewriter: %q %v", got, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New("mx.example.test", path).Forward("a@example.org", now); err == nil {
		t.Error("a short key was taken")
	}
}
