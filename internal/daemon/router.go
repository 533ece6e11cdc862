package daemon

import (
	"context"

	"facteur/internal/queue"
	"facteur/internal/remote"
	"facteur/internal/users"
)

// router is the queue's courier: it hands each domain's parcels to the
// courier for it. Mail for a local domain (bounces to local senders, mail
// queued for a domain that became local since, and all local mail when
// LMTP delivers it) goes to the local courier, Maildir or LMTP; the rest
// leaves over SMTP, DKIM-signed on the way.
type router struct {
	local  queue.Courier
	remote queue.Courier
	users  func() *users.Map
	sign   *signer
}

func (r *router) Deliver(ctx context.Context, domain string, parcels []*queue.Parcel) [][]queue.Result {
	if r.users().IsLocalDomain(domain) {
		return r.local.Deliver(ctx, domain, parcels)
	}
	return r.sign.deliver(parcels, func(parcels []*queue.Parcel) [][]queue.Result {
		return r.remote.Deliver(ctx, domain, parcels)
	})
}

// flusher is the queue as `facteur queue flush` sees it: a flush is the
// operator saying the hosts are back, so the remote client forgets the
// hosts it holds back as dead, and the messages are tried at once.
type flusher struct {
	*queue.Queue
	remote *remote.Client
}

func (f flusher) Flush() int {
	f.remote.ForgetDeadHosts()
	return f.Queue.Flush()
}
