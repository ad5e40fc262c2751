// Package fanout routes CCS messages between app servers and devices.
//
// It owns the protocol semantics that sit between the wire (package xmpp and
// the HTTP layer) and the durable store: validating downstream messages and
// answering them with an ack or a nack, resolving the target registration,
// enqueueing durably before acking, delivering to live device sessions with a
// bounded window, turning device acks into delivery receipts, carrying device
// upstream messages to the sender's app-server connections with flow
// control, and draining app-server connections on shutdown.
//
// Vocabulary:
//
//   - downstream: app server -> ccsd -> device.
//   - upstream: device -> ccsd -> app server; receipts travel the same way.
//   - pending (app-server side): a downstream message ccsd has read but not
//     yet acked or nacked. At most Config.MaxPending per connection; past
//     that, messages are nacked SERVICE_UNAVAILABLE (see docs/flow-control.md).
//   - in flight (device and upstream side): a message written to a peer that
//     has not acked it yet. Acks are valid only on the connection that carried
//     the message; whatever is in flight when a connection ends is delivered
//     again (at-least-once).
//
// fanout knows nothing of sockets: a connection is the small Conn interface,
// and the store is the Store interface, both defined here at the consumer.
// Protocol error codes are chosen in exactly one place (codes.go).
package fanout
