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
	err     error  // result of sync number done
	failed  uint64 // number of the last sync that failed
	failErr error
}

func newGroup() *group {
	g := &group{}
	g.cond.L = &g.mu
	return g
}

// sync returns once a call of sync that started after it was called has
// ended. Its error is that call's, or that of the sync running when it was
// called: that one may have been the one to write the caller's data, and a
// write error is reported once, to whoever syncs first.
func (g *group) sync(sync func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	first, want := g.done+1, g.started+1
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
		g.running, g.done, g.err = false, want, err
		if err != nil {
			g.failed, g.failErr = want, err
		}
		g.cond.Broadcast()
	}
	if g.failed >= first {
		return g.failErr
	}
	// A waiter may wake only after a later sync finished; that one started
	// after the call too, so its success is just as valid for this caller.
	return nil
}
