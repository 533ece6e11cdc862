package queue

import (
	"context"
	"fmt"
	"io"
)

// Courier carries queued messages to the recipients at one domain: the
// remote SMTP client for other domains, the Maildirs or an LMTP server for
// ours. The queue knows no more of delivery than this.
type Courier interface {
	// Deliver returns one Result per recipient per parcel: out[i][j] is for
	// parcels[i].Rcpts[j]. It returns when ctx ends, with what is not
	// settled by then transient.
	Deliver(ctx context.Context, domain string, parcels []*Parcel) [][]Result
}

// Parcel is one queued message with its recipients at one domain.
type Parcel struct {
	ID    string // queue id, for logs
	From  string // "" is the null sender
	Rcpts []string
	// Size is the size of the message bytes; an Open that adds to them
	// (a DKIM signature) changes it, so a courier reads it after Open.
	Size int64
	// Open returns the message bytes with CRLF line endings, from the
	// start at each call; what it returns is closed after.
	Open func() (io.ReadCloser, error)

	EightBit bool // the body needs 8BITMIME
	SMTPUTF8 bool // the message needs SMTPUTF8

	// DKIM: the message is ours or our users' (Origin.Signs), to be
	// signed when it leaves for another domain.
	DKIM bool
	// TLSReport: the message is a TLS report (Origin FromTLSReport), whose
	// delivery is not counted in the next ones.
	TLSReport bool
}

// Status is the outcome of one attempt for one recipient.
type Status int

const (
	// Delivered: a server took responsibility for the message, or it is
	// stored in its mailbox.
	Delivered Status = iota + 1
	// Transient: try again later.
	Transient
	// Permanent: give up and bounce.
	Permanent
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "sent"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is the outcome of one attempt for one recipient of one parcel.
type Result struct {
	Rcpt     string
	Status   Status
	Code     int    // the server's reply code; 0 when the result is the courier's own decision
	Enhanced string // RFC 3463 status such as "5.1.1"; "" if none
	Text     string // the server's reply text, or the courier's reason
	Host     string // the server that answered, or whose failure decided; "" if none
	TLS      bool   // the session with Host was encrypted
	// TLSPolicy names the policy the session with Host was held under
	// ("dane", "mta-sts", "opportunistic"...), for the log and metrics.
	TLSPolicy string
	// Log holds what else the courier wants in the delivery log line
	// (the DKIM signatures, the TLS policy a host was held to), as
	// key-value pairs.
	Log []any
}
