package store

import "context"

// Write is an asynchronous write already handed to the backend by an
// ...Async method (EnqueueAsync, PushUpstreamAsync, AckAsync,
// AckUpstreamAsync). Its outcome is read once, with Wait or with Then: nil
// means the write is durable (it survives a crash of the process), an
// error means none of it was written.
//
// Ordered submission: writes submitted one after another by one goroutine
// take effect in that order, so a connection that pipelines messages keeps
// their order without waiting for each one to be durable. A backend may
// share one durable commit among many writes.
type Write interface {
	// Wait blocks until the outcome is known and returns it.
	Wait(ctx context.Context) error
	// Then calls fn once with the outcome Wait would return, without a
	// goroutine of the caller's waiting for it: on a goroutine of the
	// backend once the write is durable, or at once on the caller's if
	// the outcome is already known (always, for a backend that writes
	// synchronously). Writes of one backend have their fn called in the
	// order the writes took effect. fn must be quick and must not block:
	// it must not Wait for another write, and it must not be called while
	// holding a lock that fn itself takes. Call Then at most once, and not
	// together with Wait.
	Then(fn func(error))
}
