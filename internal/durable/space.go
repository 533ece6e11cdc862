package durable

import (
	"sync"
	"syscall"
	"time"
)

// SpaceFloor tells whether the filesystems holding some directories have
// less free space than a floor. The answer is cached for a second, so that
// asking on every SMTP command costs no system call.
type SpaceFloor struct {
	min  int64
	dirs []string

	mu      sync.Mutex
	checked time.Time
	low     bool
}

// NewSpaceFloor watches dirs against min free bytes; min 0 never reports low.
func NewSpaceFloor(min int64, dirs ...string) *SpaceFloor {
	return &SpaceFloor{min: min, dirs: dirs}
}

// Low reports whether one of the directories' filesystems has fewer than
// min bytes available to an unprivileged writer. A directory that cannot be
// examined does not count as low: the write itself will tell.
func (f *SpaceFloor) Low() bool {
	if f.min <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= time.Second {
		f.checked, f.low = now, false
		for _, d := range f.dirs {
			if free, err := FreeBytes(d); err == nil && free < f.min {
				f.low = true
			}
		}
	}
	return f.low
}

// FreeBytes is the space available to an unprivileged writer on dir's
// filesystem.
func FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
