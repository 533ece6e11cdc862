package durable

import "sync"

// group shares one slow sync among the callers that need it at the same
// moment (group commit). A caller is covered only by a sync that started
// after it called, so if one is running it waits for it to end, and the
// next one, started by one of the waiters, covers everyone who queued
// meanwhile. At most one sync of a group runs at a time.
type group struct {
	mu      sync.Mutex
	cond    sync.Cond
	running bool
	waiting int    // callers waiting for a sync to end
	started uint64 // syncs are numbered from 1
	done    uint64
	failed  uint64 // number of the last sync that failed, 0 for none
	failErr error
}

func newGroup() *group {
	g := &group{}
	g.cond.L = &g.mu
	return g
}

// sync returns once a call of sync that started after it was called has
// ended. It fails if that call failed, and also if the one running when it
// was called failed, or the one that ended last before: those may have
// written the caller's data (the caller wrote it just before calling), and
// the kernel reports a write error once, to whoever syncs first. A failure
// thus fails a few callers it may not concern; a disk that fails writes
// makes that the lesser evil.
func (g *group) sync(sync func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	first, want := g.done, g.started+1
	for g.done < want {
		if g.running {
			g.waiting++
			g.cond.Wait()
			g.waiting--
			continue
		}
		g.started, g.running = want, true
		g.mu.Unlock()
		err := sync()
		g.mu.Lock()
		g.running, g.done = false, want
		if err != nil {
			g.failed, g.failErr = want, err
		}
		g.cond.Broadcast()
	}
	// A waiter may wake only after a later sync finished; that one started
	// after the call too, so its success is just as valid for this caller.
	if g.failed > 0 && g.failed >= first {
		return g.failErr
	}
	return nil
}
