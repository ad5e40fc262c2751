// Package httpapi serves ccsd's HTTP endpoints.
//
// Two handlers live here:
//
//   - API, the public HTTPS handler (same certificate as the XMPP
//     listeners). It carries the device endpoints: POST /checkin creates a
//     device identity and POST /c2dm/register3 registers or unregisters an
//     app on it, with GCM's "token=REGID" / "Error=CODE" text bodies. Other
//     packages mount their endpoints (/gcm/send, /gcm/notification) on it
//     with API.Handle.
//   - Admin, the operator handler for the loopback admin listener: create,
//     list and revoke senders, and a health check. It answers only requests
//     from loopback addresses and refuses cross-origin browser requests.
//
// Errors: the register endpoint answers "Error=CODE" in text/plain as GCM
// did; every other error, including unknown paths (404) and wrong methods
// (405), is a JSON object {"error": "..."} with the matching status.
//
// The package translates HTTP to calls on small interfaces (DeviceService,
// SenderService) that package auth implements; it knows nothing of the
// store.
package httpapi
