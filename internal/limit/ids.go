package limit

// Length bounds of the strings clients choose and ccsd keeps: message ids,
// registration ids, collapse keys, group names. They live here, the one
// package every layer may import, so that the XMPP path (fanout), the legacy
// HTTP send (httpapi) and the device-group API (groups) refuse the same
// lengths.
//
// Why bound them at all: each of these strings ends up in a store record or
// index key (bbolt refuses keys over 32 KB, which surfaced as a retryable
// INTERNAL_SERVER_ERROR), in every copy of a message, and in every answer
// that echoes it. Neither the GCM nor the FCM documents give a length; real
// values are far shorter (registration tokens and notification keys are
// about 150-200 bytes, message ids and collapse keys a few dozen), so the
// bounds leave a wide margin.
const (
	// MaxIDBytes bounds, in bytes after JSON decoding, every client-chosen
	// id and name field of a message: message_id, to, registration_ids
	// entries, notification_key, collapse_key, category,
	// restricted_package_name. Past it the message is refused as
	// INVALID_JSON (HTTP: 400).
	MaxIDBytes = 512

	// MaxGroupNameBytes bounds a notification_key_name. It stays at the
	// 1024 bytes ccsd has always allowed, so that no group created before
	// the bound existed becomes unreachable by name.
	MaxGroupNameBytes = 1024
)
