package dsn

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// maxLine is RFC 5322's hard limit on a line, CRLF excluded.
	maxLine = 998
	// softLine is where we fold fields we write, for readability (RFC 5322
	// 2.1.1 recommends 78).
	softLine = 78
)

// clean makes text from outside safe for one header line: invalid UTF-8
// becomes U+FFFD, and every control character, CR and LF above all,
// becomes a space, so a reply like "550 x\r\nBcc: y" stays on its line.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// field renders the header field name: value (value already cleaned),
// folded at softLine where it has spaces.
func field(name, value string) string {
	return fold(name+": "+value, softLine)
}

// fold breaks line into lines of at most width octets where it can, before
// a space, and of at most maxLine octets always: a line with no space in
// reach is cut, and its continuation given a leading space. Spaces at a
// break collapse to one and trailing ones go, so that no line is only white
// space. The result ends in CRLF.
func fold(line string, width int) string {
	var b strings.Builder
	for len(line) > width {
		i, ok := breakAt(line, width)
		if !ok {
			break
		}
		rest := strings.TrimLeft(line[i:], " ")
		if rest == "" {
			line = line[:i]
			break
		}
		b.WriteString(line[:i])
		b.WriteString("\r\n")
		line = " " + rest
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return b.String()
}

// breakAt returns where to break line, longer than width: before the last
// space within width, else the first one within maxLine, else at maxLine
// moved back to a UTF-8 character boundary; false if line may stay whole.
// It never breaks in the leading white space, which would leave a line of
// only white space.
func breakAt(line string, width int) (int, bool) {
	from := len(line) - len(strings.TrimLeft(line, " \t")) + 1
	if from < width {
		if i := strings.LastIndexByte(line[from:min(width+1, len(line))], ' '); i >= 0 {
			return from + i, true
		}
	}
	if from < min(maxLine, len(line)) {
		if i := strings.IndexByte(line[from:min(maxLine+1, len(line))], ' '); i >= 0 {
			return from + i, true
		}
	}
	if len(line) <= maxLine {
		return 0, false
	}
	i := maxLine
	for k := 0; k < utf8.UTFMax-1 && !utf8.RuneStart(line[i]); k++ {
		i--
	}
	return i, true
}
