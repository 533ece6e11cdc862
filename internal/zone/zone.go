// Package zone writes DNS records in zone-file form, as an operator pastes
// them into a zone or a DNS provider's form.
package zone

import "strings"

// maxString is the longest character-string a TXT record holds (RFC 1035
// 3.3); longer values are several strings, which readers join.
const maxString = 255

// TXT is the zone-file line of a TXT record at name (a final dot is added)
// holding value, split into quoted strings of at most 255 octets.
func TXT(name, value string) string {
	var b strings.Builder
	b.WriteString(Fqdn(name))
	b.WriteString(" IN TXT")
	for {
		n := min(len(value), maxString)
		b.WriteString(` "`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value[:n]))
		b.WriteString(`"`)
		value = value[n:]
		if value == "" {
			return b.String()
		}
	}
}

// Fqdn is name with one final dot.
func Fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }
