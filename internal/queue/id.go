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
// (milliseconds, 48 bits) and made unique by 32 random bits, so that ids
// made by several processes or hosts in the same millisecond do not
// collide in practice; the spool still refuses an id it already holds
// rather than replace a message. It names the message in replies, logs,
// Received headers and spool file names.
func NewID() string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return idEncoding.EncodeToString(b[:])
}
