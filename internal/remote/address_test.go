package remote

import "testing"

func TestPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"alice@example.test":    "alice@example.test",
		"a.b+tag@example.test":  "a.b+tag@example.test",
		"élodie@example.test":   "élodie@example.test",
		"john doe@example.test": `"john doe"@example.test`,
		"a..b@example.test":     `"a..b"@example.test`,
		".a@example.test":       `".a"@example.test`,
		`say "hi"@example.test`: `"say \"hi\""@example.test`,
		`back\slash@example.t`:  `"back\\slash"@example.t`,
		"a@b@example.test":      `"a@b"@example.test`,
		"@example.test":         `""@example.test`,
	} {
		got, err := path(in)
		if err != nil || got != want {
			t.Errorf("path(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\r\nb@example.test", "a\x00@example.test", "nodomain"} {
		if got, err := path(bad); err == nil {
			t.Errorf("path(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Opportunistic, Required, Verify, None} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Error("ParsePolicy accepted nonsense")
	}
}
