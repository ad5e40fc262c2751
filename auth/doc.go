// Package auth owns the identities that connect to ccsd and the secrets that
// prove them.
//
// Vocabulary:
//
//   - A sender is an app-server account, named by a sender id (a 12-digit
//     number in the style of a Google project number) and proved by an API
//     key. App servers log in over XMPP with SASL PLAIN as
//     SENDER_ID@gcm.googleapis.com with the API key as password, or send
//     "Authorization: key=API_KEY" over HTTP.
//   - A device is a physical installation, created by a checkin. It is named
//     by an android id (a random unsigned 64-bit decimal number) and proved by
//     a security token. Devices log in over XMPP as ANDROID_ID with the token
//     as password, and over HTTP with "Authorization: AidLogin ID:TOKEN".
//   - A registration ties one app (its category, e.g. an Android package
//     name) on one device to one sender. Its id, the registration token, is
//     what app servers put in "to".
//   - A service account (serviceaccounts.go, tokens.go, jwt.go) is the HTTP
//     v1 credential of a sender: ServiceAccounts.Create makes a
//     Google-format JSON key whose project_id is the sender id and keeps
//     only the public half of its RSA key; Grant answers the OAuth2
//     JWT-bearer grant (RFC 7523) of POST /token with a random access token
//     (an hour, stored as its SHA-256 digest, at most
//     DefaultMaxTokensPerSender live per sender); AuthenticateBearer takes
//     such a token, or a self-signed JWT of the account, and returns the
//     sender.
//
// Secrets (API keys, security tokens, access tokens) are returned to their owner exactly once
// and stored only as SHA-256 digests. They are generated with at least 128
// bits of entropy, so a fast hash is the right tool: a slow password hash
// defends guessable secrets against offline guessing, and these secrets are
// not guessable; a fast hash keeps every XMPP login and HTTP request cheap.
// Digests are compared in constant time.
//
// A device must log in over XMPP and register an app within
// DeviceLimits.UnusedTTL (default a day) of its checkin, or ExpireUnused
// deletes it with its registrations: an anonymous checkin loop then costs
// the disk only what one TTL's worth of rate-limited checkins holds. A
// device holds at most DeviceLimits.MaxRegistrations (default 100) live
// registrations.
//
// Senders.Authenticate and Devices.Login implement the Authenticator
// interface of package xmpp (Authenticate(ctx, user, password) (identity,
// error)) without importing it; Login also records a device's first login.
// They depend only on the small store interfaces declared here, which
// every store.Backend satisfies.
package auth
