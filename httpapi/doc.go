// Package httpapi serves ccsd's HTTP endpoints.
//
// Two handlers live here:
//
//   - API, the public HTTPS handler (same certificate as the XMPP
//     listeners). It carries the device endpoints: POST /checkin creates a
//     device identity and POST /c2dm/register3 registers or unregisters an
//     app on it, with GCM's "token=REGID" / "Error=CODE" text bodies. The
//     app-server endpoints mount on it: SendHandler (POST /gcm/send, the
//     legacy HTTP send, over fanout) and NotificationHandler
//     (/gcm/notification, the device-group API, over package groups'
//     registry) and IIDHandler (iid.go: the Instance ID API's topic
//     management, /iid/v1:batchAdd, :batchRemove, /iid/v1/TOKEN/rel/topics/
//     NAME and /iid/info/TOKEN, over package topics' registry). All check
//     "Authorization: key=API_KEY" with one helper (keyauth.go: the header
//     in any case and spacing, the failed-login budget, the 401 and 429
//     answers); IIDHandler also takes a device's own AidLogin on the
//     single-token endpoints. /gcm/send also sends to "/topics/NAME" and
//     to a "condition" (Router.SendTopic). FCM HTTP v1 mounts there too:
//     TokenHandler (token.go: POST /token, the OAuth2 JWT-bearer grant a
//     service-account file's token_uri names) and V1Handler (v1.go: POST
//     /v1/projects/{project}/messages:send, decoded by ccs.DecodeV1 and
//     routed like /gcm/send, answered in Google's error shape). Bearer
//     tokens are checked by keyChecker.checkBearer (keyauth.go), which the
//     Instance ID endpoints use too once IIDHandler.AcceptBearer is called.
//   - Admin, the operator handler for the loopback admin listener: create,
//     list and revoke senders, and a health check; ServiceAccountAdmin
//     (admin_serviceaccounts.go) mounts the senders' service-account keys. It answers only requests
//     from loopback addresses and refuses cross-origin browser requests.
//
// Errors: the register endpoint and the plain-text send answer "Error=CODE"
// in text/plain as GCM did; every other error, including unknown paths
// (404) and wrong methods (405), is a JSON object {"error": "..."} with the
// matching status, written by writeError (mux.go). Request bodies are read
// by one helper, readBody, which answers 413 past the endpoint's bound.
//
// The package translates HTTP to calls on small interfaces (DeviceService,
// SenderService, KeyAuthenticator, Router, GroupRegistry, TopicRegistry,
// DeviceAuthenticator) that packages auth, fanout, groups and topics
// implement; it knows nothing of the store (topics.Info carries
// store.Subscription values, read, never stored, here).
package httpapi
