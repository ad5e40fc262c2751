// Package store is ccsd's durable state, written backend-neutral: the
// domain types (Sender, Device, Registration, Message, Upstream, Group...),
// the sentinel errors, the repository interfaces in their users' words
// (Senders, Devices, Registrations, Queues, UpstreamQueues, Groups,
// Sweeper; Backend is all of them) and the contract below. It imports no
// storage engine. store/bolt is the production backend (bbolt, one file);
// store/memstore is a test-only backend in memory; store/storetest is the
// contract suite every backend must pass (a backend on another engine,
// such as NATS JetStream, starts by passing it).
//
// # Vocabulary
//
// A sender is an app server identity (GCM sender id + API key hash). A device
// is a checked-in phone. A registration is one app on one device registered
// for one sender; its id is the token app servers address. A device has one
// downstream queue holding the messages of all its apps; a sender has one
// upstream queue holding device upstream messages and delivery receipts.
//
// # Writes
//
// Every write is atomic: all of it takes effect or none (an Enqueue of a
// group fan-out writes every member copy, or none; an Ack with a receipt
// deletes the message and pushes the receipt together). A nil error means
// the write is durable; an error means nothing of it was written. A
// caller whose context ends while its write is still waiting gets
// ctx.Err() and nothing is written; once the backend has started the
// write, the caller waits for its true outcome.
//
// The asynchronous writes (EnqueueAsync, PushUpstreamAsync, AckAsync,
// AckUpstreamAsync) return a Write. Ordered submission: writes submitted
// one after another by one goroutine take effect in that order, so a
// connection pipelining messages keeps their order without waiting for
// each to be durable. Its outcome is read with Wait or, without a goroutine
// parked per write, with Then: the callback runs once, in the order the
// writes took effect, with everything the write sets (Seqs, Discarded)
// already set; a backend that writes synchronously calls it at once.
// An empty Enqueue (no MessageID, Messages or Upstream) is a barrier: it
// writes nothing, and its outcome (nil) comes once every write submitted
// before it has taken effect. A backend should make it cheap (bolt: no
// commit of its own); fanout submits one per device login.
//
// A function a caller hands to a write (Enqueue.Overflow, UpdateGroup's fn)
// may run more than once (a backend may retry a batch), so it must depend
// only on its arguments and set what it captures afresh on each run.
//
// After Close every method returns ErrClosed; writes submitted before it
// complete.
//
// # Queues and cursors
//
// Each device queue and each sender's upstream queue numbers its records
// with a Seq that only grows: a record written later has a larger Seq than
// every record written before it in that queue, and a Seq is never reused,
// even after the queue empties. A session therefore keeps an "after"
// cursor: Pending(after) and PendingUpstream(after) return the records
// with Seq > after, in Seq order, and stay valid across acks, sweeps and
// restarts.
//
// A read is a snapshot taken at some instant during the call. It never
// returns a record whose delete (Ack, AckUpstream, Unregister, Sweep)
// returned before the read was called, and always returns a record whose
// write returned before it (unless since deleted or expired). A record
// deleted while the read runs may or may not be listed: fanout remembers
// the acks it made during a read (senderHub.ackedDuring) for that reason.
//
// # Lanes
//
// A message's High and DelayWhileIdle are stored and returned with it;
// they make its Lane. PendingLane(lane) lists exactly the messages Pending
// lists (same Seq, same fields, same expiry rule) whose Lane is lane, in
// Seq order, after a cursor of its own; a message leaves its lane with
// its delete, whatever deletes it (Ack, collapse, the bounds, Unregister,
// Sweep, a device or sender delete).
//
// # Expiry and sweep
//
// A record with Expires > 0 is dead once nowMs > Expires: Pending and
// PendingUpstream skip it at the caller's nowMs, so expiry needs no sweep to
// be correct. Sweep only frees the space: it deletes what expired before
// nowMs (queued messages, upstream records, dedup records) with everything
// that refers to them, doing a bounded amount of work per call (More: call
// again). It never deletes a live record; an Ack of a swept message gets
// ErrNotFound. Fanout calls it every SweepInterval with its clock. Records
// with Expires <= 0 never expire.
//
// # Dedup, collapse and the per-registration bound
//
// An Enqueue with a MessageID refuses with ErrDuplicate, writing nothing,
// while (SenderID, MessageID) has a dedup record valid at the backend's
// clock (Options.Now); otherwise it writes one valid until DedupUntil (if
// DedupUntil is not already past). A stale record is replaced.
//
// A message with a CollapseKey replaces the queued message of the same
// (RegID, CollapseKey), in the same write: at most one per key is queued,
// the newest, with a new Seq.
//
// A message with MaxCollapseKeys > 0 and a collapse key its registration
// has not queued, whose registration already has MaxCollapseKeys distinct
// collapse keys queued, first deletes the oldest (lowest Seq) of those
// messages, in the same write, and counts it in Enqueue.Evicted: a
// registration holds at most MaxCollapseKeys keys and the newest ones are
// kept. The deleted message is gone as if acked (its Ack gets
// ErrNotFound). The reserved key of a deleted_messages message does not
// count and is never deleted by this bound.
//
// A message with MaxQueued > 0 whose registration already has MaxQueued
// queued messages without a collapse key is not stored: those messages are
// deleted and the message Enqueue.Overflow renders (deleted_messages)
// takes their place, with a reserved collapse key, so a registration holds
// at most one; Enqueue.Discarded counts what was deleted. Messages with a
// collapse key are neither counted nor deleted.
//
// # Upstream usage
//
// UpstreamUsage is what a sender's queue holds (records and bytes, expired
// but unswept ones included), answered from memory: it counts a push once
// its write succeeded and forgets a record once its delete did.
//
// # Devices and registrations
//
// Unregister tombstones a registration and deletes its queued messages in
// one write. SweepDevices deletes each device created before its cutoff
// that never logged in or has no live registration, with its registrations
// and queued messages, and judges each device only once.
//
// # Topics
//
// A subscription is (sender, topic, registration): it belongs to the
// sender, so a topic of the same name of another sender is another topic,
// and only a live registration of that sender may be subscribed
// (ErrNotFound otherwise, per id). Subscribe and Unsubscribe are
// idempotent; the first add date is kept. A registration may hold at most
// the max topics Subscribe is given (ErrTooManyTopics). Unregister, and
// SweepDevices for the registrations it deletes, delete their
// subscriptions in the same write. Subscribers lists a topic's
// registrations in ID order after a cursor, so a fan-out of any size reads
// them in pages.
//
// A topic job is the durable half of a topic (or condition) send:
// PutTopicJob is the one write before the sender's ack. AdvanceTopicJob
// queues one page of copies and moves the job's position (Step, Cursor) or
// deletes the job in the same atomic write, so after a crash the fan-out
// resumes from TopicJobs exactly after the last page written: no
// subscriber gets a page twice, none is skipped. Memberships tells which
// of a condition's topics each registration of a page holds.
//
// # Service accounts
//
// A service key is the public half of a sender's service-account key, by
// its key id; a sender holds at most the max PutServiceKey is given
// (ErrTooManyKeys). An access token is stored by its SHA-256 digest and
// dies at its Expires: AccessToken never returns it after, at the
// caller's nowMs. PutAccessToken bounds a sender's live tokens (the one
// expiring first goes) and frees that sender's expired ones in the same
// write, so the tokens a sender can make ccsd store stay bounded without
// a sweep. DeleteServiceKey deletes the key's tokens with it.
package store
