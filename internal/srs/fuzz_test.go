package srs

import (
	"strings"
	"testing"
)

// FuzzReverse: no local part reads back unless it is, but for case, the
// one Forward makes from what it reads back as.
func FuzzReverse(f *testing.F) {
	r := NewWithKey("mx.example.test", []byte("0123456789abcdef0123456789abcdef"))
	good, _ := r.Forward("alice@example.org", now)
	goodLocal, _, _ := strings.Cut(good, "@")
	for _, s := range []string{goodLocal, "SRS0=", "SRS0====", "SRS0=a=b=c=d", "srs0=AAAAAA=ZZ=x=y=z", "alice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, local string) {
		orig, err := r.Reverse(local, now)
		if err != nil {
			return
		}
		again, err := r.Forward(orig, now)
		if err != nil || !strings.EqualFold(again, local+"@mx.example.test") {
			t.Errorf("%q read back as %q, which rewrites as %q %v", local, orig, again, err)
		}
	})
}
