package maildir

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// counter makes names unique within the process: it is shared by every
// goroutine and every Store, since two Stores may deliver into one Maildir.
var counter atomic.Uint64

var pid = os.Getpid()

// uniqueName returns a file name following the Maildir convention,
// <seconds>.M<microseconds>P<pid>Q<counter>.<host>. Flags (":2,") are for
// readers and never added on delivery.
func (s *Store) uniqueName(now time.Time) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s",
		now.Unix(), now.Nanosecond()/1000, pid, counter.Add(1), s.host)
}
