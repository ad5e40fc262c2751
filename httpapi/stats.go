package httpapi

import "sync/atomic"

// Stats counts the requests the public API refused for a per-address
// rate: CheckinRefused past Config.CheckinLimit, RegisterRefused past
// Config.RegisterLimit (both answered 429).
type Stats struct {
	CheckinRefused, RegisterRefused uint64
}

type apiStats struct {
	checkinRefused, registerRefused atomic.Uint64
}

// Stats returns the API's refusal counts.
func (a *API) Stats() Stats {
	return Stats{CheckinRefused: a.stats.checkinRefused.Load(), RegisterRefused: a.stats.registerRefused.Load()}
}
