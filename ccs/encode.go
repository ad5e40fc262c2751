package ccs

import "strconv"

// The stanzas ccsd writes, rendered once as JSON bytes. Field names and
// shapes follow spec §4–§7; see docs/device-protocol.md for the device side.

// AckJSON is the ack of message messageID; from is the "to" the message
// named, omitted when empty (a device's messages).
func AckJSON(from, messageID string) []byte {
	o := newObject(make([]byte, 0, 64+len(from)+len(messageID)))
	o.strIf("from", from)
	o.str("message_id", messageID)
	o.str("message_type", "ack")
	return o.done()
}

// NackJSON is the nack of message messageID with n's code and description.
func NackJSON(from, messageID string, n *Nack) []byte {
	o := newObject(make([]byte, 0, 128+len(from)+len(messageID)+len(n.Description)))
	o.strIf("from", from)
	o.str("message_id", messageID)
	o.str("message_type", "nack")
	o.str("error", string(n.Code))
	o.str("error_description", n.Description)
	return o.done()
}

// DrainingJSON is the CONNECTION_DRAINING control message (spec §4.5).
func DrainingJSON(messageID string) []byte {
	o := newObject(nil)
	o.str("message_type", "control")
	o.str("control_type", "CONNECTION_DRAINING")
	o.str("message_id", messageID)
	return o.done()
}

// ReceiptJSON is the delivery receipt of spec §6: status fields inside data,
// "from" the literal CCS host, message_id prefixed "dr2:".
func ReceiptJSON(originalID, regID, app string, sentMs int64) []byte {
	o := newObject(make([]byte, 0, 256))
	o.str("message_type", "receipt")
	o.str("from", "gcm.googleapis.com")
	o.str("message_id", "dr2:"+originalID)
	o.strIf("category", app)
	d := newObject(nil)
	d.str("message_status", "MESSAGE_SENT_TO_DEVICE")
	d.str("original_message_id", originalID)
	d.str("device_registration_id", regID)
	d.str("message_sent_timestamp", strconv.FormatInt(sentMs, 10))
	o.raw("data", d.done())
	o.int("time_to_live", 0)
	return o.done()
}

// DeviceCopyJSON is what a device receives for a downstream message. from is
// the sender id, or the notification key when the message came through a
// group (then notificationKey is set too).
func DeviceCopyJSON(m *Downstream, regID, from, app, notificationKey string, sentMs int64) []byte {
	o := newObject(make([]byte, 0, 160+len(m.Data)+len(m.Notification)))
	o.str("message_id", m.MessageID)
	o.str("to", regID)
	o.str("from", from)
	o.str("category", app)
	o.strIf("notification_key", notificationKey)
	o.strIf("collapse_key", m.CollapseKey)
	o.strIf("priority", m.Priority)
	o.int("time_to_live", m.TTL)
	o.rawIf("content_available", m.ContentAvailable)
	o.rawIf("mutable_content", m.MutableContent)
	o.rawIf("data", m.Data)
	o.rawIf("notification", m.Notification)
	o.int("sent", sentMs)
	return o.done()
}

// UpstreamJSON is what an app server receives for a device's upstream
// message (spec §5.1).
func UpstreamJSON(category string, data []byte, messageID, fromRegID string, ttl int64) []byte {
	o := newObject(make([]byte, 0, 128+len(data)))
	o.str("category", category)
	o.rawIf("data", data)
	o.str("message_id", messageID)
	o.str("from", fromRegID)
	o.int("time_to_live", ttl)
	return o.done()
}

// GroupCopyJSON is the app server's copy of a device's message to its
// group (a sender with group copies on): an upstream message like
// UpstreamJSON's, whose "to" is the notification_key it was sent to.
func GroupCopyJSON(key, category string, data []byte, messageID, fromRegID string, ttl int64) []byte {
	o := newObject(make([]byte, 0, 160+len(key)+len(data)))
	o.str("to", key)
	o.str("category", category)
	o.rawIf("data", data)
	o.str("message_id", messageID)
	o.str("from", fromRegID)
	o.int("time_to_live", ttl)
	return o.done()
}

// GroupAckJSON answers a message sent to a notification_key (spec §9.2):
// the ack carries the group's counts, and always the message_id so that
// clients that correlate by it (every one we read) can.
func GroupAckJSON(key, messageID string, success int, failed []string) []byte {
	o := newObject(make([]byte, 0, 128+len(key)+len(messageID)+len(failed)*64))
	o.str("from", key)
	o.str("message_id", messageID)
	o.str("message_type", "ack")
	o.int("success", int64(success))
	o.int("failure", int64(len(failed)))
	if len(failed) > 0 {
		o.strs("failed_registration_ids", failed)
	}
	return o.done()
}

// DeletedMessagesJSON is the deleted_messages message a device receives
// in place of messages that overflowed its queue.
func DeletedMessagesJSON(messageID, regID, sender, app string, sentMs int64) []byte {
	o := newObject(make([]byte, 0, 160))
	o.str("message_type", "deleted_messages")
	o.str("message_id", messageID)
	o.str("to", regID)
	o.str("from", sender)
	o.strIf("category", app)
	o.int("sent", sentMs)
	return o.done()
}
