package fanout

import "sync"

// Presence knows the live device sessions: who is online, waking the
// session whose queue grew, and the one-session-per-device rule. The router
// asks it and never keeps sessions itself, so that a cluster can put
// another implementation here, one that knows sessions on other nodes and
// carries wake-ups and replacements to them (jackal keeps a local version
// beside its etcd one for the same reason). New uses localPresence when
// Config.Presence is nil.
type Presence interface {
	// Claim makes s the live session of deviceID. A session it replaces is
	// told Evict, once (MaxDeviceSessions).
	Claim(deviceID string, s Session)
	// Release forgets s, if it is still deviceID's live session; a session
	// already replaced changes nothing.
	Release(deviceID string, s Session)
	// Online reports whether deviceID has a live session.
	Online(deviceID string) bool
	// Wake tells deviceID's live session, if any, that its queue grew.
	Wake(deviceID string)
}

// Session is a live device session as Presence sees it. *DeviceStream
// implements it.
type Session interface {
	// Wake makes the session look at its queue. It never blocks.
	Wake()
	// Evict ends the session: a newer one of the same device took over.
	Evict()
}

// sessionFinder is a Presence that can hand out the live session object of
// a device on this node; the fast path needs it (a cluster's Presence that
// does not implement it has no fast path).
type sessionFinder interface {
	// Session returns deviceID's live session, or nil.
	Session(deviceID string) Session
}

// localPresence is Presence for one node: an in-process map.
type localPresence struct {
	mu sync.Mutex
	m  map[string]Session
}

func newLocalPresence() *localPresence { return &localPresence{m: make(map[string]Session)} }

func (p *localPresence) Claim(deviceID string, s Session) {
	p.mu.Lock()
	old := p.m[deviceID]
	p.m[deviceID] = s
	p.mu.Unlock()
	if old != nil && old != s {
		old.Evict() // outside the lock: it closes a connection
	}
}

func (p *localPresence) Release(deviceID string, s Session) {
	p.mu.Lock()
	if p.m[deviceID] == s {
		delete(p.m, deviceID)
	}
	p.mu.Unlock()
}

func (p *localPresence) Online(deviceID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[deviceID] != nil
}

func (p *localPresence) Wake(deviceID string) {
	p.mu.Lock()
	s := p.m[deviceID]
	p.mu.Unlock()
	if s != nil {
		s.Wake()
	}
}

func (p *localPresence) Session(deviceID string) Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[deviceID]
}
