package device

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Message is one downstream message as ccsd delivered it
// (docs/device-protocol.md, "Downstream").
type Message struct {
	ID              string         // message_id, unique per sender (per registration here)
	To              string         // the registration token it was sent to
	From            string         // the sender id, a notification_key, or "/topics/NAME"
	Category        string         // the app
	CollapseKey     string         // collapse_key, if any
	NotificationKey string         // set when it came through a device group
	Priority        string         // "high", "normal" or ""
	TTL             int64          // time_to_live in seconds
	Data            map[string]any // the data payload; values are mostly strings
	Notification    json.RawMessage
	Sent            time.Time // when ccsd accepted it
	// Deleted is true for a deleted_messages notice: ccsd dropped queued
	// messages of this registration (too many were waiting), so the app
	// should sync with its server. It carries no Data.
	Deleted bool
	// Raw is the JSON payload exactly as received.
	Raw []byte
}

// Handler handles the downstream messages of a Client, one at a time, in
// the order they arrive. Returning nil acks the message to ccsd, which
// then deletes it; an error nacks it: ccsd keeps it queued and offers it
// again on the next session. A message is acked only after its handler
// returned, so one the process dies in the middle of comes again.
type Handler interface {
	HandleMessage(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// HandleMessage calls f(ctx, m).
func (f HandlerFunc) HandleMessage(ctx context.Context, m *Message) error { return f(ctx, m) }

// wireMessage is every field a stanza from ccsd may have: a downstream
// message, deleted_messages, or the ack or nack of an upstream message.
type wireMessage struct {
	MessageType     string          `json:"message_type"`
	MessageID       string          `json:"message_id"`
	To              string          `json:"to"`
	From            string          `json:"from"`
	Category        string          `json:"category"`
	CollapseKey     string          `json:"collapse_key"`
	NotificationKey string          `json:"notification_key"`
	Priority        string          `json:"priority"`
	TTL             int64           `json:"time_to_live"`
	Data            map[string]any  `json:"data"`
	Notification    json.RawMessage `json:"notification"`
	Sent            int64           `json:"sent"`
	Error           string          `json:"error"`
	Description     string          `json:"error_description"`
}

// parseWire decodes a gcm payload.
func parseWire(payload []byte) (*wireMessage, error) {
	var w wireMessage
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("device: payload from ccsd is not CCS JSON: %w", err)
	}
	return &w, nil
}

// message is the downstream message w carries.
func (w *wireMessage) message(raw []byte) *Message {
	m := &Message{
		ID: w.MessageID, To: w.To, From: w.From, Category: w.Category,
		CollapseKey: w.CollapseKey, NotificationKey: w.NotificationKey,
		Priority: w.Priority, TTL: w.TTL, Data: w.Data, Notification: w.Notification,
		Deleted: w.MessageType == "deleted_messages",
		Raw:     append([]byte(nil), raw...),
	}
	if w.Sent > 0 {
		m.Sent = time.UnixMilli(w.Sent)
	}
	return m
}
