package store

import "context"

// Write is an asynchronous write already handed to the backend by an
// ...Async method (EnqueueAsync, PushUpstreamAsync). Wait returns its
// outcome: nil means the write is durable (it survives a crash of the
// process), an error means none of it was written.
//
// Ordered submission: writes submitted one after another by one goroutine
// take effect in that order, so a connection that pipelines messages keeps
// their order without waiting for each one to be durable. A backend may
// share one durable commit among many writes.
type Write interface {
	Wait(ctx context.Context) error
}
