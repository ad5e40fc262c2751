// Package limit holds the in-memory limiters that bound what clients
// control: keyed token buckets (requests per address, messages per
// registration) and keyed counters of concurrent use (connections per
// address). Every table is bounded in entries, so a client spraying keys
// (addresses, ids) costs ccsd a fixed amount of memory and only loses it the
// history of idle keys. Checks take one mutex and allocate nothing for a
// known key; nothing here touches the store.
package limit
