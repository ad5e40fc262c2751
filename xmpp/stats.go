package xmpp

import "sync/atomic"

// Stats is what a Server has done since NewServer: logins by outcome and
// connections refused at accept by limit. Sessions is the current number
// of negotiated connections (ConnCount).
type Stats struct {
	Sessions int
	// LoginsOK and LoginsFailed count SASL PLAIN attempts with right and
	// wrong credentials; LoginsThrottled those answered
	// temporary-auth-failure by the failed-login limiter (LoginLimiter),
	// before or after their credentials were checked.
	LoginsOK, LoginsFailed, LoginsThrottled uint64
	// RefusedGlobal and RefusedPerAddr count connections closed at accept
	// because of Config.Conns and Config.MaxUnauthPerAddr.
	RefusedGlobal, RefusedPerAddr uint64
}

// serverStats are the Server's counters: plain atomics on the accept and
// login paths, nothing per stanza.
type serverStats struct {
	loginsOK, loginsFailed, loginsThrottled atomic.Uint64
	refusedGlobal, refusedPerAddr           atomic.Uint64
}

// Stats returns the server's counts and its session count.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Sessions:        s.ConnCount(),
		LoginsOK:        st.loginsOK.Load(),
		LoginsFailed:    st.loginsFailed.Load(),
		LoginsThrottled: st.loginsThrottled.Load(),
		RefusedGlobal:   st.refusedGlobal.Load(),
		RefusedPerAddr:  st.refusedPerAddr.Load(),
	}
}
