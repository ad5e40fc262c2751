// Package bolt is the bbolt backend of package store: one file on disk,
// every write through one group committer (many writes per fsync). It is
// the only package that imports go.etcd.io/bbolt; it implements the
// contract written in package store (see store.Backend) and passes the
// contract suite store/storetest. What follows is how it does so.
//
// # Schema (version 2)
//
// Top-level buckets, with key → value. "part(s)" is a uvarint length followed
// by the bytes of s, so composite keys never collide whatever the ids hold;
// "seq" is a uint64 big-endian sequence number from the queue bucket's
// NextSequence, so cursors walk a queue in arrival order; "be64" is 8 bytes
// big-endian. Values are hand-encoded (see codec.go): a version byte, then
// the fields in a fixed order, strings and byte slices length-prefixed.
// Queued messages have their own compact layout (msgcodec.go, record
// version 2; version 1 records of older files are still read).
//
//	meta      "version" → uint32 be (SchemaVersion). Open refuses newer
//	          versions and marks a version 1 file version 2 (a version 1
//	          build cannot read version 2 message records)
//	senders   senderID → Sender
//	devices   deviceID → Device (ID, SecretHash, Created, LoggedIn; records
//	          written before LoggedIn existed end after Created and read as
//	          logged in)
//	devcreated be64(created ms) part(deviceID) → empty: every device created
//	          with a Created time, until SweepDevices has judged it. Open adds
//	          the bucket to a schema 1 database that lacks it; devices older
//	          than it have no entry and are never expired
//	regs      regID → Registration + unregistered flag (tombstones are kept)
//	regidx    part(deviceID) part(senderID) part(app) → regID, live registrations only
//	tombstones part(deviceID) be64(seq) → regID: the device's tombstones,
//	          oldest first (seq is the bucket's NextSequence). Unregister
//	          adds one and deletes the oldest past 100 per device; tombstones
//	          from before the bucket existed are not listed and stay
//	queues    deviceID → nested bucket: seq → Message (without DeviceID and
//	          Seq; a device copy's JSON without the ids the record holds)
//	collapse  part(regID) part(collapseKey) → part(deviceID) be64(seq) of the one
//	          queued message holding that collapse key
//	regcollapse part(regID) be64(seq) → deviceID: each registration's queued
//	          messages with a collapse key (the reserved deleted_messages key
//	          excepted), oldest first, so Message.MaxCollapseKeys counts its
//	          distinct keys and finds the oldest with one prefix seek. Written
//	          with the collapse entry; at most MaxCollapseKeys per
//	          registration when bounded. meta "regcollapse" marks a file
//	          whose index is built (Open builds it once from collapse)
//	upstream  senderID → nested bucket: seq → Upstream (without SenderID and Seq)
//	dedup     part(senderID) part(messageID) → be64(dedupUntil ms)
//	expiry    be64(expires ms) kind part(id) tail → empty. kind 'm': id = deviceID,
//	          tail = be64(seq), only for version 1 message records (older
//	          files); 'u': id = senderID, tail = be64(seq); 'd': id =
//	          senderID, tail = part(messageID)
//	qexpiry   be64(bound ms) part(deviceID) → empty, and
//	qexpirydev deviceID → be64(bound) [be64(resume seq) be64(min)]: one
//	          lower bound per device of its queued messages' expiry times,
//	          instead of an expiry entry per message (qexpiry.go)
//	lanes     part(deviceID) lane be64(seq) → empty: the queued messages of
//	          store.LaneUrgent (priority high) and store.LaneIdle
//	          (delay_while_idle), written with the message and deleted with
//	          it (removeMessage), read by PendingLane; created by the first
//	          such message (priority.go). Those bits are flags bits 3 and 4
//	          of the message record (msgcodec.go)
//	regqueued regID → be64 count of its queued messages without a collapse
//	          key, written in the transaction of every put and delete of one
//	          (bounds Message.MaxQueued); meta "regqueued" marks a
//	          file whose counts are built (Open builds them once otherwise)
//	groups    notification_key → Group (name, sender, app, members); created
//	          by the first CreateGroup
//	groupnames part(senderID) part(name) → notification_key, written in the
//	          same transaction as the group, so name and key always agree
//	topicsubs part(senderID) part(topic) regID → be64(added ms): a topic's
//	          subscribers, one key each, so a fan-out reads them as a prefix
//	          range in regID order from its cursor (Seek), one page per read,
//	          whatever the topic's size (100,000 subscribers and more)
//	regtopics part(regID) topic → be64(added ms): the same pairs by
//	          registration, written in the same transaction: Subscriptions,
//	          the topics-per-registration bound (counted by prefix), and the
//	          cleanup of Unregister and SweepDevices, which delete both
//	topicjobs be64(seq) → TopicJob (sender, topic, message id, cursor,
//	          created, body): an accepted topic send still fanning out.
//	          AdvanceTopicJob queues a page of copies and rewrites the
//	          step and cursor (or deletes the job) in one transaction;
//	          PutTopicJob claims and writes the dedup record in its own
//	          transaction, as Enqueue does
//
// The expiry index is ordered by time, so Sweep reads it from the start and
// stops at the first entry in the future: it touches only what expired.
// It reads the qexpiry index the same way and walks the queue of each
// device whose bound has passed (qexpiry.go). Every delete of a queued
// message (ack, collapse, collapse-key bound, unregister, sweep) also
// deletes its collapse and regcollapse entries (and a version 1 record's
// expiry entry) in the same transaction; the device's bound stays, a
// lower bound still. Records
// with Expires <= 0 never expire and have no expiry entry. Queue buckets are
// never deleted when they empty, so sequence numbers only grow and a
// session's "after" cursor stays valid.
//
// SweepDevices reads the devcreated index the same way: from the oldest
// device, up to the first one too young to judge. A device old enough that
// never logged in or has no live registration is deleted with its live
// registrations (found by the regidx prefix part(deviceID)), its listed
// tombstones, its queued messages and its queue bucket; one that passes only loses its index
// entry. The registrations of a device are counted the same way, in
// RegisterLimited's transaction, to bound them.
//
// Upstream queue usage (messages and bytes per sender) is kept in memory,
// built by one walk at Open and changed by commit handlers of the writes
// that push or delete upstream records, so limits check it without a read.
//
// Unregister finds a registration's queued messages by scanning its device's
// queue (reading only the RegID field, which is encoded first); queues are
// bounded by the router and unregistration is rare, so this is cheaper than
// an index written on every Enqueue.
//
// # Group commit
//
// Every write goes through one committer goroutine (DB.update). A write is an
// op: a function run inside a bbolt write transaction. Callers put ops on a
// channel and wait; the committer takes every op waiting (up to
// Options.MaxBatch), runs them in one bbolt Update, fsyncs once, then answers
// each caller. While a commit's fsync runs, new ops pile up and form the next
// batch, so batches grow with load, and a lone op is committed at once
// instead of waiting for a timer as bbolt's own DB.Batch does. A nil error
// from a write therefore always means the write is on disk. Stats counts
// commits and ops, so Ops/Commits is the batch size achieved.
//
// # Freelist, page fill and restart
//
// Commits run with bbolt's NoFreelistSync (no freelist write per commit,
// whose cost grows with the free pages); Close writes the freelist once,
// so the next Open reads it instead of walking every page (syncFreelist).
// After a crash there is none: Open first reads the file sequentially
// (prefetch.go) so that bbolt's walk, random reads in tree order, finds it
// in the page cache. Buckets written in key order (queues, upstream
// queues, expiry indexes) are split full (FillPercent 1.0, appending)
// instead of bbolt's half-full default.
//
// # Failure isolation
//
// bbolt has no savepoints, so an op that fails halfway cannot be undone on
// its own. Ops that refuse before writing anything (duplicate, exists, not
// found: the expected refusals) return clean(err): the committer answers
// that op with err and carries on with the same transaction. Any other
// error, or a panic, aborts the transaction, which rolls the whole batch
// back; the committer answers the failed op with its error and re-runs the
// batch without it. Ops must therefore be safe to run more than once and
// set captured results afresh on each run.
//
// # Cancellation and Close
//
// A caller whose context ends while its op is still waiting gets ctx.Err()
// and the op is dropped unwritten. Once the committer has taken the op into
// a transaction the caller waits for the real outcome, so an error always
// means nothing was written. Close stops accepting ops (later ones get
// ErrClosed), commits those already queued, then closes the file.
//
// Helpers for other files of this package: db.view(fn) runs a read
// transaction, db.update(ctx, fn) runs a write op through the committer.
package bolt
