package metrics

import (
	"net/http"
	"net/http/pprof"
)

// Debug returns Go's pprof handlers under /debug/pprof/ on a mux of their
// own, for the loopback admin listener to mount. Importing net/http/pprof
// also registers them on http.DefaultServeMux, which ccsd never serves:
// every listener has its own handler (cmd/ccsd checks it), so they are
// reachable on the admin port only.
func Debug() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also every named profile: heap, goroutine, allocs, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
