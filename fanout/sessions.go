package fanout

import (
	"cmp"
	"context"
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
// snapshot: counts may change while it is read.
func (r *Router) Sessions() []SessionInfo {
	r.mu.Lock()
	out := make([]SessionInfo, 0, len(r.appConns))
	for _, s := range r.appConns {
		out = append(out, SessionInfo{
			ID: s.id, Kind: KindApp, Identity: s.sender, Remote: s.remote, Since: s.since,
			Pending: int(s.pending.Load()), InFlight: s.inFlight(), Draining: s.draining.Load(),
		})
	}
	r.mu.Unlock()
	r.devMu.Lock()
	devs := make([]*DeviceStream, 0, len(r.devices))
	for _, d := range r.devices {
		devs = append(devs, d)
	}
	r.devMu.Unlock()
	for _, d := range devs {
		d.mu.Lock()
		n := d.count
		d.mu.Unlock()
		out = append(out, SessionInfo{
			ID: d.connID, Kind: KindDevice, Identity: d.id, Remote: d.remote, Since: d.since,
			Pending: int(d.pending.Load()), InFlight: n,
		})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// DrainAppServers drains every app-server connection open now (see
// DrainConn) and returns how many it started draining. Connections opened
// afterwards are accepted and not drained.
func (r *Router) DrainAppServers() int {
	r.mu.Lock()
	conns := make([]*AppServerStream, 0, len(r.appConns))
	for _, s := range r.appConns {
		conns = append(conns, s)
	}
	r.mu.Unlock()
	n := 0
	for _, s := range conns {
		if r.drainConn(s, "admin drain") {
			n++
		}
	}
	return n
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
		r.drainConn(s, "admin drain")
		return nil
	}
	r.devMu.Lock()
	_, dev := r.devices[id]
	r.devMu.Unlock()
	if dev {
		return ErrNotAppServer
	}
	return ErrUnknownConn
}

// drainConn starts the drain of s, once; it reports whether this call
// started it.
func (r *Router) drainConn(s *AppServerStream, why string) bool {
	if s.drainJob.Swap(true) {
		return false
	}
	s.startDrain()
	r.log.Info().Str("conn", s.id).Str("sender", s.sender).Str("why", why).Msg("draining app-server connection")
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainGrace)
		defer cancel()
		err := s.waitQuiet(ctx, r.stop)
		if err != nil {
			r.log.Warn().Str("conn", s.id).Str("sender", s.sender).Err(err).Dur("drain_grace", r.cfg.DrainGrace).
				Msg("drained connection not quiet in time; closing it anyway")
		}
		s.c.Close(Finished)
	}()
	return true
}

// waitQuiet waits until every downstream message read on s is answered and
// every upstream message in flight on it is acked, s closed, stop closed,
// or ctx ended (its error).
func (s *AppServerStream) waitQuiet(ctx context.Context, stop <-chan struct{}) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	// pending before answering, as in waitAnswered.
	for s.pending.Load() > 0 || s.answering.Load() > 0 || s.inFlight() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return nil
		case <-stop:
			return nil
		case <-t.C:
		}
	}
	return nil
}

// jitter spreads d by ±10%, so that connections opened together (after a
// restart) are not all drained at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}
