package fanout

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// Draining on demand and the list of live sessions, for the operator
// (spec §7). Shutdown's Drain (router.go) drains everything and refuses
// new work; these drain chosen app-server connections only, while new
// connections are accepted as usual, so the app servers move their traffic
// to a fresh connection of the same node without losing anything.

// Session kinds, as SessionInfo.Kind says them.
const (
	KindApp    = "app"
	KindDevice = "device"
)

// Errors of DrainConn.
var (
	// ErrUnknownConn: no live connection has that id.
	ErrUnknownConn = errors.New("fanout: no live connection with that id")
	// ErrNotAppServer: the id is a device session; only app-server
	// connections are drained (CCS sent CONNECTION_DRAINING to app servers
	// only).
	ErrNotAppServer = errors.New("fanout: only app-server connections drain")
)

// SessionInfo describes one live connection of this node.
type SessionInfo struct {
	ID       string    // Conn.ID
	Kind     string    // KindApp or KindDevice
	Identity string    // sender id or device id
	Remote   string    // Conn.Remote
	Since    time.Time // when the stream opened, by Config.Now
	// Pending counts what the peer sent that ccsd has not answered yet:
	// downstream messages of an app server, upstream messages of a device.
	Pending int
	// InFlight counts what ccsd sent that the peer has not acked yet:
	// upstream messages and receipts to an app server, downstream messages
	// to a device.
	InFlight int
	// Draining: the connection was sent CONNECTION_DRAINING.
	Draining bool
}

// Sessions lists the live connections of this node, oldest first. It is a
// snapshot: counts may change while it is read. The streams are collected
// under the router's locks and described outside them.
func (r *Router) Sessions() []SessionInfo {
	apps, devs := r.appStreams(), r.deviceStreams()
	out := make([]SessionInfo, 0, len(apps)+len(devs))
	for _, s := range apps {
		out = append(out, SessionInfo{
			ID: s.id, Kind: KindApp, Identity: s.sender, Remote: s.c.Remote(), Since: s.since,
			Pending: int(s.pending.Load()), InFlight: s.inFlight(), Draining: s.draining.Load(),
		})
	}
	for _, d := range devs {
		d.mu.Lock()
		n := d.count
		d.mu.Unlock()
		out = append(out, SessionInfo{
			ID: d.c.ID(), Kind: KindDevice, Identity: d.id, Remote: d.c.Remote(), Since: time.UnixMilli(d.sinceMs),
			Pending: int(d.pending.Load()), InFlight: n,
		})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// appStreams returns the app-server streams open now.
func (r *Router) appStreams() []*AppServerStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := make([]*AppServerStream, 0, len(r.appConns))
	for _, s := range r.appConns {
		conns = append(conns, s)
	}
	return conns
}

// DrainAppServers drains every app-server connection open now (see
// DrainConn) and returns how many it started draining. Connections opened
// afterwards are accepted and not drained.
func (r *Router) DrainAppServers() int {
	return r.drainConns(r.appStreams(), "admin drain")
}

// DrainConn drains one app-server connection: it is sent
// CONNECTION_DRAINING, later downstream messages on it are nacked
// CONNECTION_DRAINING, new upstream goes to the sender's other
// connections, and it is closed once every message it carried has been
// answered and every upstream message in flight on it acked, or after
// Config.DrainGrace. It returns at once; ErrUnknownConn or ErrNotAppServer
// if id is not a live app-server connection. Draining one already
// draining changes nothing.
func (r *Router) DrainConn(id string) error {
	r.mu.Lock()
	s := r.appConns[id]
	r.mu.Unlock()
	if s != nil {
		r.drainConns([]*AppServerStream{s}, "admin drain")
		return nil
	}
	if r.isDevice(id) {
		return ErrNotAppServer
	}
	return ErrUnknownConn
}

// isDevice reports whether id names a live device session. Device sessions
// are not indexed by id (that would cost every idle session a string), so
// this walks them, outside the lock logins take: an operator's call, never
// a message's.
func (r *Router) isDevice(id string) bool {
	for _, d := range r.deviceStreams() {
		if d.c.ID() == id {
			return true
		}
	}
	return false
}

// deviceStreams returns the device streams open now.
func (r *Router) deviceStreams() []*DeviceStream {
	r.devMu.Lock()
	defer r.devMu.Unlock()
	devs := make([]*DeviceStream, 0, len(r.devices))
	for d := range r.devices {
		devs = append(devs, d)
	}
	return devs
}

// drainConns starts the drain of each stream not draining on demand yet
// and returns how many that is. One goroutine per call closes them as each
// becomes quiet, so draining a thousand connections polls from one
// goroutine, not a thousand.
func (r *Router) drainConns(conns []*AppServerStream, why string) int {
	started := conns[:0:0]
	for _, s := range conns {
		if s.drainJob.Swap(true) {
			continue
		}
		s.startDrain()
		r.log.Info().Str("conn", s.id).Str("sender", s.sender).Str("why", why).Msg("draining app-server connection")
		started = append(started, s)
	}
	if len(started) == 0 {
		return 0
	}
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		r.closeWhenQuiet(started)
	}()
	return len(started)
}

// closeWhenQuiet closes each stream once every downstream message read on
// it is answered and every upstream message in flight on it acked (or it
// closed by itself), and the rest when Config.DrainGrace is over or the
// router stops.
func (r *Router) closeWhenQuiet(conns []*AppServerStream) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	grace := time.NewTimer(max(r.cfg.DrainGrace, 0))
	defer grace.Stop()
	for {
		conns = slices.DeleteFunc(conns, func(s *AppServerStream) bool {
			if s.quiet() {
				s.c.Close(Finished)
				return true
			}
			return false
		})
		if len(conns) == 0 {
			return
		}
		select {
		case <-t.C:
			continue
		case <-grace.C:
			r.log.Warn().Int("connections", len(conns)).Dur("drain_grace", r.cfg.DrainGrace).
				Msg("drained connections not quiet in time; closing them anyway")
		case <-r.stop:
		}
		for _, s := range conns {
			s.c.Close(Finished)
		}
		return
	}
}

// quiet reports whether a draining stream may close: it closed already,
// or every downstream message read on it is answered (pending is read
// before answering, as in waitAnswered) and no upstream message is in
// flight on it.
func (s *AppServerStream) quiet() bool {
	select {
	case <-s.closed:
		return true
	default:
	}
	return s.pending.Load() == 0 && s.answering.Load() == 0 && s.inFlight() == 0
}

// jitter spreads d by ±10%, so that connections opened together (after a
// restart) are not all drained at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}
