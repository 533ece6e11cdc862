package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// namer makes the unique file names of one process. Its random part tells
// apart the processes that share everything else: hosts given one hostname
// (one certificate for all) whose server is PID 1 in its container, writing
// into one Maildir on a shared filesystem.
type namer struct {
	now    func() time.Time
	pid    int
	random string
	// count makes names unique within the process: it is shared by every
	// goroutine and every Store, since two Stores may deliver into one
	// Maildir.
	count atomic.Uint64
}

// process names the files of this process.
var process = &namer{now: time.Now, pid: os.Getpid(), random: randomHex()}

// randomHex is 64 random bits: two processes draw the same with a
// probability of 2^-64, and even then the rename into new/ never replaces.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}

// next returns a file name following the Maildir convention,
// <seconds>.M<microseconds>P<pid>R<random>Q<counter>.<host>; host is
// already escaped. Flags (":2,") are for readers and never added on
// delivery.
func (n *namer) next(host string) string {
	t := n.now()
	return fmt.Sprintf("%d.M%dP%dR%sQ%d.%s", t.Unix(), t.Nanosecond()/1000, n.pid, n.random, n.count.Add(1), host)
}
