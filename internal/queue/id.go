// Package queue is the durable spool of mail waiting for remote delivery
// and the scheduler that delivers it.
package queue

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// idAlphabet is Crockford's base32: no I, L, O or U to misread in a log.
const idAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

// NewID returns a message id: 16 characters, sortable by arrival time
// (microseconds, 56 bits) and made unique by 24 random bits, so two ids
// made in the same microsecond collide once in 16 million; the spool
// refuses an id it already holds rather than replace a message. It names
// the message in replies, logs, Received headers and spool file names.
func NewID() string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMicro())<<8)
	rand.Read(b[7:])
	return idEncoding.EncodeToString(b[:])
}
