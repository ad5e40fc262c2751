// Package fanout routes CCS messages between app servers and devices.
//
// It owns the protocol semantics that sit between the wire (package xmpp and
// the HTTP layer) and the durable store: routing the typed messages package
// ccs decodes and validates and answering them with an ack or a nack, resolving the target registration,
// enqueueing durably (or delivering and having the device ack) before
// acking, delivering to live device sessions with a
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
// The CCS JSON (types, decoding, validation, encoding, error codes) is
// package ccs's; the nacks that come from routing or storage are chosen
// here in nacks.go.
//
// Files, in the order a message meets them:
//
//   - router.go: Router, its Config, and the Conn and Store interfaces.
//   - appserver.go: AppServerStream, one app-server connection: its
//     downstream messages, acks of upstream, draining.
//   - downstream.go: resolve (target to copies), route (the fast path or
//     the write), submit (the durable write, in arrival order, answered
//     from the store's completion callback), and Send for the HTTP API.
//   - fastpath.go: a message to an online, caught-up device is sent at
//     once and its write held back; acked in time, only its dedup record
//     (and receipt) is written.
//   - device.go: DeviceStream, one device session: delivery with a window,
//     device acks and receipts, device upstream.
//   - lanes.go, doze.go: priority (the urgent lane overtakes a normal
//     backlog) and the device's DOZE / AWAKE state (normal messages held up
//     to Config.MaxDozeDelay, delay_while_idle ones until AWAKE).
//   - hub.go: senderHub, the upstream dispatcher of one sender.
//   - presence.go, policy.go: live device sessions; how many sessions an
//     identity may hold.
//   - quota.go: per-registration rates and queue bounds.
//   - nacks.go: store errors and unknown targets as nacks.
package fanout
