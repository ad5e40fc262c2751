// Package xmpp is ccsd's XMPP wire layer: listeners, direct TLS, SASL PLAIN,
// resource binding, the session and ping IQs, stanza input and output, and a
// bounded writer per connection.
//
// It knows nothing of CCS semantics. A connection is handed to a Handler once
// it is authenticated and bound; the Handler returns a Stream that receives
// the text of every <gcm xmlns="google:mobile:data"> element the peer sends,
// and writes back with Conn.Send, Conn.Bounce and Conn.Close. The same Server
// type serves app servers (port 5235) and devices (port 5228) with different
// Authenticators and Handlers.
//
// # Vocabulary
//
//   - identity: what the Authenticator returned for the SASL credentials (a
//     sender id, a device id); the localpart of the bound JID.
//   - JID: identity@Domain/RESOURCE, the resource random and chosen by the
//     server.
//   - payload: the text content of a gcm element, XML-unescaped on input
//     (entities and CDATA), escaped on output (& < > only).
//   - stream error: the <stream:error/> that ends a connection (conflict,
//     policy-violation, system-shutdown, connection-timeout...).
//
// # Why negotiation is mellium's and stanza I/O is ours
//
// Stream negotiation (headers, features, SASL, restart, bind) is fiddly and
// rarely on a hot path, so it is delegated to mellium.im/xmpp with
// ReceiveSession, SASLServer and BindCustom. Around it this package adds what
// mellium lacks (see shared/mellium-notes.md, beside the repository): a check of the stream
// `to` domain (host-unknown), a PLAIN mechanism that accepts the two login
// forms and a missing initial response and always answers <failure/>,
// failed-login budgets (Config.Logins, shared with the HTTP key checks; a
// throttled attempt gets temporary-auth-failure), the legacy session
// feature, and a byte filter under the XML decoder that drops whitespace
// between top-level elements (go-xmpp writes newlines mellium rejects),
// bounds the size of every top-level element while reading and keeps the
// idle read deadline.
//
// After negotiation the connection no longer goes through mellium's Serve and
// Send: stanzas are read from Session.TokenReader (keeping the decoder and its
// read-ahead) and answered here, and a writer goroutine, started when
// something is queued and gone when the queue is drained (an idle session
// holds no writer and no write buffer), writes stanzas rendered as bytes
// straight to the TLS connection. mellium's
// write path escapes '"' as &#34; (JSON grows by a third), adds ids and a
// type attribute CCS clients must not see, and costs a goroutine and a flush
// per stanza; ours renders the exact CCS shapes, coalesces queued stanzas
// into one write with a write deadline, answers pings ahead of queued
// messages, and never blocks a sender: a full queue means a slow consumer,
// and that connection is closed.
//
// # Connection life
//
// Accept (within Config.Conns, the process-wide count, and MaxUnauthPerAddr;
// past either the socket is closed at once), TLS handshake (bounded by
// HandshakeTimeout), negotiation (bounded by NegotiationTimeout; the address's
// unauthenticated slot is given back when it ends), admission
// (MaxConnsPerIdentity), Handler.Open, then the reader calls Stream.Message
// for each gcm message until the stream ends; Stream.Closed is called once,
// the writer flushes and says goodbye, and the socket is closed. Conn.Done is
// closed at the very end.
package xmpp
