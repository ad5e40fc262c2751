// Package groups is ccsd's device-group registry, GCM's "user
// notifications": the notification_key an app server sends to instead of a
// registration id, and the rules of the API that manages it. The HTTP
// handler of that API is package httpapi's NotificationHandler; this
// package knows nothing of HTTP.
//
// # Vocabulary
//
// A device group is one user's registrations of one app, owned by one
// sender. It has a notification_key_name, chosen by the app server (for
// example "user-4711"), and a notification_key, chosen by ccsd ("APA91b"
// followed by 256 random bits, base64url). Its members are registration ids.
// A message sent to the key goes to every member (package fanout resolves
// the key with the store; this package only keeps the membership).
//
// # Rules, and where each comes from
//
// "spec" is spec/ccs-protocol.md; "issue" is the task that defined this
// package where the sources are silent.
//
//   - Operations are create, add and remove (POST) and a lookup of the key by
//     name (GET ?notification_key_name=). Each answers 200
//     {"notification_key": KEY}. Spec §8.2.
//   - Requests carry "Authorization: key=API_KEY" and "project_id:
//     SENDER_ID"; a missing header or a key that is not the project's is
//     401. Spec §8.1, §8.3.
//   - A name is unique per sender: creating a name the sender already uses
//     fails. Spec §8.2 (name and key are unique to one group).
//   - Every member is a registration of the sender and all members are of
//     one app, so a group message reaches only the intended app. Spec §8.2
//     (names unique per app when apps share a sender); one app per group is
//     ccsd's reading of it.
//   - In a create, ids that are not live registrations of the sender are
//     dropped silently when at least one is valid; with none valid the
//     create fails ("no valid registration ids"). Spec §8.2 (FCM).
//   - In an add, every id must be a live registration of the sender and of
//     the group's app; otherwise the add fails, naming the id, and nothing
//     changes. Issue.
//   - A group has at most MaxMembers members: 10 by default, as in the first
//     GCM document, configurable (FCM allowed 20). An add that would exceed it
//     fails and changes nothing. Spec §8.2.
//   - notification_key_name is optional in add and remove; when given it must
//     be the key's name, which guards against using the wrong key. Spec §8.2.
//   - Removing ids that are not members is no error (remove is idempotent);
//     removing the last member deletes the group and frees its name. Spec §8.2
//     (delete on empty), issue (idempotence).
//   - A member that is later unregistered stays in the group until the app
//     server removes it: the group is the app server's to manage, and sends
//     report the member as failed. Issue; docs/decisions.md.
//   - A sender sees only its own groups: another sender's key or name gets
//     the same 404 {"error":"notification_key not found"} as a missing one.
//     Design invariant 3.
//   - GET returns the group's one canonical key (FCM may return a different
//     encoding each time; any is valid, spec §8.2).
//   - Errors are JSON {"error": "..."}: 400 for bad JSON, a missing field, an
//     unknown operation, a name in use, a name/key mismatch, a bad or
//     foreign registration id, mixed apps, too many members or no valid ids;
//     401 for bad credentials; 404 for an unknown key or name; 405 for a
//     method other than GET and POST; 413 for a body over 64 KiB; 429 with
//     Retry-After past the failed-login budget; 503 when the store is
//     shutting down (Temporary). The texts are ccsd's own (spec §8.3 says
//     Google's are unconfirmed); httpapi maps the sentinel errors of
//     errors.go to them.
//
// # Consistency
//
// Add and remove run inside one store transaction (store.UpdateGroup), so
// concurrent changes to one group never lose a member, and a refused change
// writes nothing. Registration checks for an add happen just before that
// transaction; an id unregistered in between is treated like one
// unregistered just after, which the group keeps too.
package groups
