// Package ccs is the CCS wire format: the JSON of the messages app servers
// and devices exchange with ccsd, and the legacy HTTP names of its errors.
//
// It owns
//
//   - decoding: Decode reads one stanza (DecodeRequest a legacy HTTP send
//     body) with a reader that sees every member, so a repeated name is
//     refused instead of silently dropped (jsonr.go);
//   - validation: Stanza.Downstream, Stanza.Upstream and Stanza.Multicast
//     turn raw fields into typed values (Downstream, Upstream) under the
//     protocol limits (MaxTTL, MaxDataSize, MaxDataJSONBytes, and
//     limit.MaxIDBytes for every id), answering a refusal with a Nack;
//   - encoding: the acks, nacks, receipts, control and device copies ccsd
//     writes, rendered by hand in a stable field order without reflection
//     (encode.go, jsonw.go);
//   - the error codes: Code, Nack, and in one table (codes.go) the legacy
//     HTTP error name of each XMPP code.
//
// ccs imports only the standard library and internal/limit; it knows
// nothing of routing, storage or connections (package fanout routes the
// typed values, packages xmpp and httpapi carry them).
package ccs
