package auth

import (
	"context"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
)

// SPF is the verdict on the envelope sender's domain.
type SPF struct {
	Result Result
	// Domain is the domain checked: MAIL FROM's, or the HELO name for
	// the null sender (RFC 7208 2.4), which DMARC then aligns.
	Domain string
	Helo   bool // Domain is the HELO name
	Reason string
}

// SPF checks whether ip may send mail from mailFrom, or for the null
// sender, from the HELO name.
func (c *Checker) SPF(ctx context.Context, ip netip.Addr, helo, mailFrom string) SPF {
	v := SPF{Domain: domainOf(mailFrom)}
	sender := mailFrom
	if v.Domain == "" {
		v.Domain, v.Helo = helo, true
		sender = "postmaster@" + helo
	}
	res, err := spf.CheckHostWithSender(ip.Unmap().AsSlice(), helo, sender,
		spf.WithResolver(c.r), spf.WithContext(ctx))
	v.Result = Result(res)
	if err != nil && v.Result != Pass {
		v.Reason = err.Error()
	}
	return v
}

func (s SPF) authres() authres.Result {
	r := &authres.SPFResult{Value: authres.ResultValue(s.Result), Reason: s.Reason}
	if s.Helo {
		r.Helo = s.Domain
	} else {
		r.From = s.Domain
	}
	return r
}

// domainOf is the domain of an address, "" when it has none.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}
