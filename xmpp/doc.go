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
// During negotiation the byte filter is also an io.ByteReader, so that
// mellium's decoder keeps no read-ahead of its own, and it holds mellium's
// writes until its next read (one TLS record per answer instead of one per
// flush).
//
// After negotiation the connection no longer goes through mellium at all:
// its session (decoder, encoder, maps) is dropped, and stanzas are read by
// the CCS stanza scanner (stanzaread.go, fastparse.go) straight from the
// filtered bytes, starting with what negotiation's decoder read but did not
// consume. The byte filter marks where each top-level construct and each
// top-level start tag ends; the scanner parses each complete stanza in one
// pass, with no tokens and no allocation but the id, type, from, to and
// payload. It accepts only what it knows encoding/xml reads the same way
// (ASCII names, quoted attributes, the predefined entities and character
// references, CDATA, the characters XML allows) and hands anything else
// (comments, processing instructions, non-ASCII names, malformed input,
// stream-level elements) to encoding/xml with mellium's stream-level rules
// (refparse.go) on that one construct, so that every answer is the one the
// generic decoder gave; FuzzStanzaScanner compares the two on the same
// bytes. An element still being read is checked for errors as it grows
// (each time it doubles, and when a read fails), as the decoder did byte by
// byte. An idle session holds no read buffer: the read that waits uses one
// on the goroutine's stack. Stanzas are answered here, and a writer
// goroutine, started when
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
// (MaxConnsPerIdentity), Handler.Open (on a new goroutine, so that the
// stack the handshake grew is not kept by a session that then idles), then
// the reader calls Stream.Message
// for each gcm message until the stream ends; Stream.Closed is called once,
// the writer flushes and says goodbye, and the socket is closed. Conn.Done is
// closed at the very end.
//
// Once a connection is closing (Conn.Close, a stream error, a slow consumer,
// Server.Close), what the peer still sends is read only to see its
// </stream:stream>: no message is delivered and no IQ answered. A revoked
// sender's session cannot get one more message accepted during the wait.
//
// # What one connection can make the server hold
//
// Nothing a peer sends is buffered without bound. The byte filter counts the
// bytes of each top-level element and fails the read past MaxStanzaSize
// (policy-violation), and fails it when elements nest more than MaxDepth (16)
// levels below the stream (policy-violation; a stanza is level 1, its gcm
// child level 2). After negotiation no stream header is a restart: the filter
// is told when negotiation ended and during negotiation takes only the
// opening header and the one after SASL success as restarts. A top-level
// element that is not a message, iq or presence in jabber:client ends the
// stream with unsupported-stanza-type as soon as its start tag is read, before
// the rest of it is read. The send queue is bounded both by count (SendQueue)
// and by bytes (SendQueueBytes, IQ answers included): past either the peer is
// a slow consumer and the connection is closed; an empty queue always takes
// one stanza, however big.
//
// So, with S the biggest single stanza written to the connection (a bounce
// echoes a payload and id from one received stanza: S <= 6*MaxStanzaSize +
// 1 KiB, every byte escaping to at most 6), one connection holds at most
//
//	reader: MaxStanzaSize + 2*DecoderReadAhead (the read buffer: one element, the reads around it)
//	        + MaxStanzaSize      (the gcm payload being copied out)
//	        + 3*MaxStanzaSize    (only for input the scanner leaves to encoding/xml: its copy and tokens)
//	        + ~19 KiB            (one TLS record being decrypted)
//	writer: max(SendQueueBytes, S) (the queue)
//	        + 24 B * 4*(SendQueue+64) (queue slots, at most half taken, slack of growth)
//	        + 64 KiB + S         (the batch being written, while writing)
//	        + ~17 KiB            (one TLS record being encrypted, while writing)
//
// plus the reader goroutine's stack; with the defaults (64 KiB, 1 MiB, 1024)
// that is under 2 MiB, about 1.7 MiB when no stanza written is bigger
// than 64 KiB.
// Conn.Usage reports the parts that depend on the peer as counts: QueuedBytes
// (<= max(SendQueueBytes, S)), ReadBytes (<= MaxStanzaSize +
// DecoderReadAhead: the element being read and one read past it) and
// Depth (<= MaxDepth), each with its peak.
package xmpp
