package rspamd

import (
	"bytes"
	"maps"
	"slices"
	"strings"
)

// Edit applies the result's header changes to a header section (its bytes
// up to and including the empty line that ends it) and returns the new
// section: the fields of Remove go (0: every field of that name; n > 0:
// the nth; n < 0: the nth from the end), a "rewrite subject" replaces the
// Subject, and the fields of Add come in where their Order says.
func (r *Result) Edit(section []byte) []byte {
	fields, end := split(section)
	for _, name := range slices.Sorted(maps.Keys(r.Remove)) {
		fields = remove(fields, name, r.Remove[name])
	}
	if r.Action == RewriteSubject && r.Subject != "" {
		subject := line(Field{Name: "Subject", Value: r.Subject})
		at := -1
		for i, f := range fields {
			if f.is("Subject") {
				at = i
				break
			}
		}
		fields = remove(fields, "Subject", 0)
		if at < 0 || at > len(fields) {
			at = len(fields)
		}
		fields = insert(fields, at, subject)
	}
	var tail []raw
	for _, f := range r.Add {
		l := line(f)
		if l == nil {
			continue
		}
		if f.Order < 0 || f.Order > len(fields) {
			tail = append(tail, l)
			continue
		}
		fields = insert(fields, f.Order, l)
	}
	var b bytes.Buffer
	for _, f := range append(fields, tail...) {
		b.Write(f)
	}
	b.Write(end)
	return b.Bytes()
}

// raw is one header field as written, continuation lines and line ending
// included.
type raw []byte

func (f raw) is(name string) bool {
	n, _, ok := bytes.Cut(f, []byte(":"))
	return ok && strings.EqualFold(string(bytes.TrimSpace(n)), name)
}

// split cuts a header section into its fields and what ends it (the
// empty line; nothing when the message has no body).
func split(section []byte) ([]raw, []byte) {
	var fields []raw
	for len(section) > 0 {
		i := bytes.IndexByte(section, '\n') + 1
		if i == 0 {
			i = len(section)
		}
		l := section[:i]
		switch {
		case len(bytes.TrimRight(l, "\r\n")) == 0:
			return fields, section
		case (l[0] == ' ' || l[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1] = append(fields[len(fields)-1], l...)
		default:
			fields = append(fields, append(raw(nil), l...))
		}
		section = section[i:]
	}
	return fields, nil
}

// remove drops the fields called name: all (n = 0), the nth (n > 0) or
// the nth from the end (n < 0).
func remove(fields []raw, name string, n int) []raw {
	var at []int
	for i, f := range fields {
		if f.is(name) {
			at = append(at, i)
		}
	}
	drop := map[int]bool{}
	switch {
	case n == 0:
		for _, i := range at {
			drop[i] = true
		}
	case n > 0 && n <= len(at):
		drop[at[n-1]] = true
	case n < 0 && -n <= len(at):
		drop[at[len(at)+n]] = true
	}
	out := fields[:0:0]
	for i, f := range fields {
		if !drop[i] {
			out = append(out, f)
		}
	}
	return out
}

func insert(fields []raw, at int, f raw) []raw {
	return append(fields[:at:at], append([]raw{f}, fields[at:]...)...)
}

// line writes a field with CRLF line endings. rspamd folds long values;
// a line break not followed by white space would start a field of its
// own, so it becomes a space. A name that is not one is dropped (nil).
func line(f Field) raw {
	if f.Name == "" || strings.ContainsFunc(f.Name, func(r rune) bool { return r <= ' ' || r == ':' || r >= 0x7f }) {
		return nil
	}
	parts := strings.Split(strings.ReplaceAll(f.Value, "\r", ""), "\n")
	var b strings.Builder
	b.WriteString(f.Name + ": " + strings.TrimLeft(parts[0], " \t"))
	for _, p := range parts[1:] {
		if p == "" {
			continue
		}
		if p[0] == ' ' || p[0] == '\t' {
			b.WriteString("\r\n" + p)
		} else {
			b.WriteString(" " + p)
		}
	}
	b.WriteString("\r\n")
	return raw(b.String())
}
