package store

import (
	"context"
	"time"
)

// Options are the settings every backend takes. A backend's own
// constructor may take more (see store/bolt.Options).
type Options struct {
	// Now is the clock the backend reads where it needs the time itself
	// (today: the dedup window check of Enqueue) [time.Now]. Reads that
	// filter by time take the caller's nowMs instead.
	Now func() time.Time
}

// Senders keeps the app server identities (auth uses it).
type Senders interface {
	// PutSender creates a sender; ErrExists if its id is taken.
	PutSender(s Sender) error
	// Sender returns a sender, revoked ones included; ErrNotFound if none.
	Sender(id string) (Sender, error)
	// Senders lists every sender, revoked ones included, sorted by ID.
	Senders() ([]Sender, error)
	// RevokeSender marks a sender revoked; ErrNotFound if none.
	RevokeSender(id string) error
	// SetGroupCopies sets Sender.GroupCopies and returns the sender as
	// written; ErrNotFound if none (revoked senders included).
	SetGroupCopies(id string, on bool) (Sender, error)
}

// Devices keeps the checked-in devices (auth uses it).
type Devices interface {
	// PutDevice creates a device; ErrExists if its id is taken. A device
	// with a Created time is a candidate for SweepDevices.
	PutDevice(d Device) error
	// Device returns a device; ErrNotFound if none.
	Device(id string) (Device, error)
	// MarkDeviceLoggedIn sets Device.LoggedIn; ErrNotFound if none.
	MarkDeviceLoggedIn(ctx context.Context, id string) error
	// SweepDevices judges each device created before createdBefore once:
	// one that never logged in or has no live registration is deleted with
	// its registrations and queued messages; the others are kept and never
	// judged again. It does a bounded amount of work per call (More).
	SweepDevices(ctx context.Context, createdBefore time.Time) (DeviceSweepStats, error)
}

// Registrations keeps the registration ids app servers address (auth,
// groups and fanout use it).
type Registrations interface {
	// Register creates r, or returns the live registration of the same
	// (DeviceID, SenderID, App): registering twice returns one id.
	// ErrExists if r.ID is used by another registration, live or not. It
	// neither bounds the device's registrations nor needs the device.
	// RegisterLimited does both. Re-registering a live (DeviceID,
	// SenderID, App) returns its registration even at the bound.
	Register(r Registration) (Registration, error)
	// RegisterLimited is Register for a device that must exist
	// (ErrNotFound) and may hold at most max live registrations
	// (ErrTooManyRegistrations; max <= 0: no bound), checked atomically
	// with the write.
	RegisterLimited(r Registration, max int) (Registration, error)
	// Registration returns a registration; for an unregistered one it
	// returns the record and ErrUnregistered; ErrNotFound if unknown.
	Registration(id string) (Registration, error)
	// Registrations is Registration for many ids, read at one point in
	// time: errs[i] is the error of ids[i]; err is a backend failure.
	Registrations(ids []string) (regs []Registration, errs []error, err error)
	// FindRegistration returns the live registration of (device, sender,
	// app); ErrNotFound if none.
	FindRegistration(deviceID, senderID, app string) (Registration, error)
	// Unregister tombstones a registration and deletes its queued
	// messages in the same atomic write; later Registration calls return
	// ErrUnregistered. ErrNotFound if unknown; unregistering twice is a
	// no-op. A backend may keep a bounded number of tombstones per device
	// (bolt: 100); past it the oldest read as ErrNotFound.
	Unregister(ctx context.Context, id string) error
}

// Queues are the per-device downstream queues (fanout uses them).
type Queues interface {
	// Enqueue is EnqueueAsync followed by Wait.
	Enqueue(ctx context.Context, e *Enqueue) error
	// EnqueueAsync submits every message of e as one atomic write (see the
	// package documentation: dedup, collapse, bound). e must not change
	// until Wait returns.
	EnqueueAsync(ctx context.Context, e *Enqueue) Write
	// Pending returns up to limit (<= 0: all) queued messages of the
	// device with Seq > after, in Seq order, skipping those expired at
	// nowMs.
	Pending(deviceID string, after uint64, limit int, nowMs int64) ([]Message, error)
	// PendingLane is Pending restricted to the messages of one lane
	// (LaneUrgent or LaneIdle; LaneNormal lists nothing): up to limit
	// of them with Seq > after, in Seq order, skipping the expired ones,
	// read from an index of that lane, not by walking the queue.
	PendingLane(deviceID string, lane Lane, after uint64, limit int, nowMs int64) ([]Message, error)
	// Ack deletes the queued message (deviceID, seq) and returns it; if
	// receipt is not nil it is pushed to receipt.SenderID's upstream queue
	// in the same atomic write. ErrNotFound (and no receipt) if the
	// message is not queued.
	Ack(ctx context.Context, deviceID string, seq uint64, receipt *Upstream) (Message, error)
	// AckAsync is Ack without the wait and without the deleted message:
	// it submits the same write (in submission order with the other
	// Async writes) and returns at once. receipt must not change until
	// the outcome is read.
	AckAsync(ctx context.Context, deviceID string, seq uint64, receipt *Upstream) Write
	// QueueLen counts the device's queued messages, expired ones not yet
	// swept included.
	QueueLen(deviceID string) (int, error)
}

// UpstreamQueues are the per-sender upstream queues: device upstream
// messages and delivery receipts waiting for an app server (fanout uses
// them).
type UpstreamQueues interface {
	// PushUpstream is PushUpstreamAsync followed by Wait.
	PushUpstream(ctx context.Context, u *Upstream) error
	// PushUpstreamAsync submits u for u.SenderID's queue and sets u.Seq
	// when it is written. u must not change until Wait returns.
	PushUpstreamAsync(ctx context.Context, u *Upstream) Write
	// PendingUpstream returns up to limit (<= 0: all) records of the
	// sender with Seq > after, in Seq order, skipping those expired at
	// nowMs. It never returns a record whose AckUpstream returned before
	// the call started (see the package documentation, "Cursors").
	PendingUpstream(senderID string, after uint64, limit int, nowMs int64) ([]Upstream, error)
	// AckUpstream deletes the record (senderID, seq); ErrNotFound if it
	// is not queued.
	AckUpstream(ctx context.Context, senderID string, seq uint64) error
	// AckUpstreamAsync is AckUpstream without the wait.
	AckUpstreamAsync(ctx context.Context, senderID string, seq uint64) Write
	// UpstreamUsage is what the sender's queue holds now, from memory:
	// limits check it on every message without a read.
	UpstreamUsage(senderID string) QueueUsage
}

// Groups keeps the device groups (the groups registry uses it).
type Groups interface {
	// CreateGroup stores g; ErrExists if its key or (SenderID, Name) is
	// taken. Key, Name, SenderID and one member are required; repeated
	// and empty member ids are dropped. Group and name are written in one
	// atomic write, so a name always points to its group and back.
	CreateGroup(ctx context.Context, g Group) error
	// Group returns the group with the key; ErrNotFound if none.
	Group(key string) (Group, error)
	// GroupByName returns the sender's group with the name; ErrNotFound.
	GroupByName(senderID, name string) (Group, error)
	// UpdateGroup reads the group, lets fn change its Members and writes
	// it back, atomically: concurrent updates never lose a member. A group
	// left with no member is deleted with its name (free again) and
	// returned with empty Members. fn may run more than once, each time on
	// a fresh copy, and must change only Members; if it returns an error
	// nothing is written and that error is returned. ErrNotFound if none.
	UpdateGroup(ctx context.Context, key string, fn func(g *Group) error) (Group, error)
}

// Topics keeps the topic subscriptions of each sender and the topic jobs:
// messages sent to a topic, durably accepted, whose copies are still being
// queued (fanout and the Instance ID API use it). See the package
// documentation, "Topics".
type Topics interface {
	// Subscribe subscribes each of regIDs to (senderID, topic), in one
	// atomic write, and returns one error per id: nil (subscribed, or
	// already: idempotent, the first add date kept), ErrNotFound (unknown,
	// unregistered, or another sender's registration) or ErrTooManyTopics
	// (the registration holds max topics; max <= 0: no bound). err is a
	// failure of the write: then nothing was written.
	Subscribe(ctx context.Context, senderID, topic string, regIDs []string, max int) (errs []error, err error)
	// Unsubscribe is Subscribe's inverse: nil for an id now not subscribed
	// (whether it was or not), ErrNotFound for an id that is not a live
	// registration of senderID.
	Unsubscribe(ctx context.Context, senderID, topic string, regIDs []string) (errs []error, err error)
	// Subscriptions lists a registration's topics, sorted by name, with
	// the time each was first added; none for an unknown id.
	Subscriptions(regID string) ([]Subscription, error)
	// Subscribers returns up to limit (<= 0: all) live registrations
	// subscribed to (senderID, topic) whose ID sorts after after ("":
	// from the start), in ID order: a cursor for a fan-out in pages.
	Subscribers(senderID, topic, after string, limit int) ([]Registration, error)
	// Memberships reports, for each of regIDs, which of topics it is
	// subscribed to: bit i of masks[k] is set when regIDs[k] holds
	// topics[i] (at most 32 topics), read at one point in time.
	Memberships(regIDs []string, topics []string) (masks []uint32, err error)
	// PutTopicJob stores j durably and sets j.ID (a number that only grows).
	// With a MessageID it deduplicates as Enqueue does, against the same
	// records: ErrDuplicate, nothing written, while (SenderID, MessageID)
	// has a live dedup record; else it writes one until j.DedupUntil.
	PutTopicJob(ctx context.Context, j *TopicJob) error
	// TopicJobs lists the stored jobs in ID order: the fan-outs to resume
	// at start.
	TopicJobs() ([]TopicJob, error)
	// AdvanceTopicJob writes, in one atomic write, every message of e
	// (nil or empty: none; as Enqueue does, without dedup) and the job's
	// new position (step, cursor), or deletes the job when done.
	// ErrNotFound if the job is gone (nothing written).
	AdvanceTopicJob(ctx context.Context, jobID uint64, step int, cursor string, done bool, e *Enqueue) error
}

// Sweeper deletes what expired (fanout calls it on its SweepInterval).
type Sweeper interface {
	// Sweep deletes the queued messages, upstream records and dedup
	// records that expired before nowMs. It does a bounded amount of work
	// per call: when More is set, call it again.
	Sweep(ctx context.Context, nowMs int64) (SweepStats, error)
}

// Backend is everything a ccsd store implements: the contract pinned by
// store/storetest. store/bolt is the production backend.
type Backend interface {
	Senders
	Devices
	Registrations
	Queues
	UpstreamQueues
	Groups
	Topics
	ServiceAccounts
	Sweeper
	// LastCommitErr is the health signal: the error of the last write
	// that failed for a reason of the backend (a full disk), nil once a
	// write succeeds again; ErrClosed after Close. Cheap: no I/O.
	LastCommitErr() error
	// Close stops accepting writes (later ones get ErrClosed), finishes
	// those already submitted, and releases the backend. Idempotent.
	Close() error
}
