package store

import "time"

// Device is a device identity created at checkin: the id, the hash of the
// secret it logs in with, when it was created, and whether it ever opened
// an XMPP session.
type Device struct {
	ID         string
	SecretHash []byte
	Created    time.Time
	// LoggedIn is set by MarkDeviceLoggedIn on the device's first XMPP
	// login and never cleared. Records written before the field existed
	// read as true: those devices predate expiry, and are kept.
	LoggedIn bool
}

// Group is a device group: one user's registration ids of one app, under a
// notification_key.
type Group struct {
	Key      string   // notification_key, e.g. "APA91b" + >=128 random bits, base64url
	Name     string   // notification_key_name, unique per sender
	SenderID string   // the sender that owns the group
	App      string   // every member is a registration of this app
	Members  []string // registration ids, in insertion order, no duplicates
	Created  time.Time
}

// Message is one downstream message queued for a device (one queue per
// device, holding every app's messages).
type Message struct {
	Seq                                               uint64 // assigned by Enqueue, per-device increasing
	DeviceID, RegID, SenderID, MessageID, CollapseKey string
	Expires                                           int64  // unix milliseconds; never returned by Pending after this; <= 0 never expires
	Receipt                                           bool   // delivery_receipt_requested
	Payload                                           []byte // the JSON sent to the device, verbatim
	// High (priority high) and DelayWhileIdle are stored and returned:
	// they make the message's Lane.
	High, DelayWhileIdle bool
	// MaxQueued, read by Enqueue only and not stored, bounds the queued
	// messages without a collapse key of this message's registration (0:
	// unbounded), as GCM kept at most 100 per device and app. A message
	// that finds its registration at the bound is not stored: every queued
	// message of that registration without a collapse key is deleted
	// instead, and the message Enqueue.Overflow returns takes their place
	// (the message's Seq stays 0). Messages with a collapse key are bounded
	// by collapsing and are neither counted nor deleted.
	MaxQueued int
	// MaxCollapseKeys, read by Enqueue only and not stored, bounds the
	// distinct collapse keys queued for this message's registration (0:
	// unbounded), as GCM kept at most 4 per device and app. A message
	// with a collapse key not yet queued for its registration, which finds
	// MaxCollapseKeys keys queued, first deletes the oldest (lowest Seq)
	// queued message of that registration with a collapse key: it is never
	// delivered. A message replacing its own key's message deletes nothing
	// else. The deleted_messages message Overflow renders is not counted.
	MaxCollapseKeys int
}

// Enqueue is one atomic write of one or more messages (a group fan-out puts
// all member copies in one Enqueue).
type Enqueue struct {
	SenderID, MessageID string    // dedup key; MessageID == "" disables dedup
	DedupUntil          int64     // unix ms until which the dedup record lives
	Messages            []Message // Seq fields are filled in by Enqueue
	// Overflow renders the message that tells a registration its messages
	// were deleted (message_type deleted_messages), given the message that
	// overflowed. Enqueue sets its DeviceID, RegID, SenderID and a
	// reserved CollapseKey, so a registration has at most one queued:
	// a later overflow replaces it. Required when a message has a
	// MaxQueued; it runs inside the write and must not touch the DB.
	Overflow func(m *Message) Message
	// Discarded is set by Enqueue: how many messages overflows deleted,
	// the overflowing ones included.
	Discarded int
	// Evicted is set by Enqueue: how many queued messages the collapse key
	// bound (Message.MaxCollapseKeys) deleted.
	Evicted int
	// Upstream, if not nil, is pushed to Upstream.SenderID's upstream queue
	// in the same atomic write, after the messages (its Seq is set): a
	// device's message to its group and the app server's copy of it
	// (Sender.GroupCopies) are written together or not at all. A
	// duplicate (ErrDuplicate) writes it neither.
	Upstream *Upstream
}

// Registration is an app instance on a device registered for one sender: the
// registration id (the token app servers send to) and what it stands for.
type Registration struct {
	ID, DeviceID, SenderID, App string
	Created                     time.Time
}

// Sender is an app server identity: a sender id (the GCM project number) and
// the hash of its API key.
type Sender struct {
	ID      string
	KeyHash []byte
	Created time.Time
	Revoked bool
	// GroupCopies: when a device sends to its group (notification_key),
	// the sender's app servers get a copy as an upstream message "to" the
	// key. Off by default: GCM documents no such copy. Records written
	// before the field existed read false.
	GroupCopies bool
}

// SweepStats counts what one Sweep call deleted.
type SweepStats struct {
	Messages int  // expired device messages
	Upstream int  // expired upstream messages and receipts
	Dedup    int  // expired dedup records
	More     bool // the call stopped at its work bound: call Sweep again
}

// DeviceSweepStats counts what one SweepDevices call did.
type DeviceSweepStats struct {
	Checked       int  // devices judged (kept or deleted); each is judged once
	Devices       int  // devices deleted
	Registrations int  // their live registrations deleted
	Messages      int  // their queued messages deleted
	More          bool // the call stopped at its work bound: call again
}

// Upstream is a message waiting for an app server: a device's upstream
// message or a delivery receipt. There is one queue per sender.
type Upstream struct {
	Seq                 uint64 // assigned by PushUpstream (or Ack), per-sender increasing
	SenderID, MessageID string
	Expires             int64  // unix ms; <= 0 never expires
	Payload             []byte // JSON sent to the app server, verbatim
}

// QueueUsage is what one sender's upstream queue holds: messages (device
// upstream messages and delivery receipts, expired ones not yet swept
// included) and the bytes of their stored records.
type QueueUsage struct {
	Messages int
	Bytes    int64
}

// Subscription is one topic a registration is subscribed to.
type Subscription struct {
	Topic string
	Added time.Time // when it was first subscribed
}

// TopicJob is a message sent to a topic, accepted (acked) once this record
// is durable, whose copies a background fan-out queues page by page.
type TopicJob struct {
	ID                         uint64 // set by PutTopicJob, growing
	SenderID, Topic, MessageID string
	// Condition, for a message sent to a condition instead of one topic,
	// is its text (Topic is then empty).
	Condition string
	// Step is the router's position among the topics it reads (a
	// condition's topics, one after another); Cursor is the registration
	// id of the last subscriber of that step whose copy is queued (""
	// before the first page): the fan-out resumes after it.
	Step    int
	Cursor  string
	Created time.Time
	// Body is the message itself, in the router's own encoding; the store
	// keeps it verbatim.
	Body []byte
	// DedupUntil, read by PutTopicJob only and not stored, is as
	// Enqueue.DedupUntil: with a MessageID, (SenderID, MessageID) is
	// claimed in the dedup records Enqueue uses, until then.
	DedupUntil int64
}
