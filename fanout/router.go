package fanout

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/store"
)

// Conn is what fanout needs of a live stream. It is said in fanout's
// words: what a stanza is and why a connection ends. The wire layer picks
// the form (for XMPP: the type attribute, the stream error condition), so
// nothing here knows about XMPP or sockets.
type Conn interface {
	// ID names the connection for the operator (GET /admin/connections):
	// stable for its life and unique on this node among live connections.
	// An app server's is read when its stream opens; a device's only when
	// the sessions are listed, so an idle device session stores nothing
	// for it.
	ID() string
	// Remote is the peer's address, for the operator's list; read only
	// when the sessions are listed.
	Remote() string
	// Identity is the authenticated sender id or device id.
	Identity() string
	// Send queues one stanza carrying payload, of the given kind. It never
	// blocks.
	Send(payload []byte, k Kind) error
	// Bounce answers an unusable stanza with a stanza error.
	Bounce(stanzaID string, payload []byte, text string) error
	// Close ends the stream, saying why.
	Close(why Reason)
}

// Kind is what a stanza sent to a connection is.
type Kind uint8

const (
	// Answer is ccsd's word about what the peer sent or about the
	// connection: ack, nack, control (CONNECTION_DRAINING). CCS clients
	// expect these without a type attribute.
	Answer Kind = iota
	// Delivery is a message for the peer to ack: a downstream message to a
	// device, an upstream message or a receipt to an app server (CCS:
	// type="normal").
	Delivery
)

// Reason is why fanout ends a connection.
type Reason uint8

const (
	// Finished: nothing is wrong; the connection was drained, or the
	// router is closing.
	Finished Reason = iota
	// Replaced: the same device logged in again; the newer session wins.
	Replaced
	// Revoked: the credentials the connection logged in with were revoked.
	Revoked
)

// Store is the durable state fanout reads and writes: a subset of
// store.Backend, so every backend implements it. Fanout relies on the
// contract written in package store (ordered submission of the Async
// writes, growing Seqs, reads that hide acks returned before them).
type Store interface {
	Sender(id string) (store.Sender, error)
	Registration(id string) (store.Registration, error)
	Registrations(ids []string) ([]store.Registration, []error, error)
	FindRegistration(deviceID, senderID, app string) (store.Registration, error)
	Group(key string) (store.Group, error)
	EnqueueAsync(ctx context.Context, e *store.Enqueue) store.Write
	Pending(deviceID string, after uint64, limit int, nowMs int64) ([]store.Message, error)
	PendingLane(deviceID string, lane store.Lane, after uint64, limit int, nowMs int64) ([]store.Message, error)
	AckAsync(ctx context.Context, deviceID string, seq uint64, receipt *store.Upstream) store.Write
	PushUpstreamAsync(ctx context.Context, u *store.Upstream) store.Write
	PendingUpstream(senderID string, after uint64, limit int, nowMs int64) ([]store.Upstream, error)
	AckUpstreamAsync(ctx context.Context, senderID string, seq uint64) store.Write
	UpstreamUsage(senderID string) store.QueueUsage
	Sweep(ctx context.Context, nowMs int64) (store.SweepStats, error)
	Subscribers(senderID, topic, after string, limit int) ([]store.Registration, error)
	PutTopicJob(ctx context.Context, j *store.TopicJob) error
	Memberships(regIDs []string, topics []string) ([]uint32, error)
	TopicJobs() ([]store.TopicJob, error)
	AdvanceTopicJob(ctx context.Context, jobID uint64, step int, cursor string, done bool, e *store.Enqueue) error
}

// Config configures a Router. Zero values take the defaults in brackets.
type Config struct {
	Store  Store
	Logger zerolog.Logger
	// Domain is the CCS host name devices address upstream messages to, as
	// in "SENDER@gcm.googleapis.com" [gcm.googleapis.com]; Aliases are
	// accepted as well (fcm.googleapis.com always is).
	Domain  string
	Aliases []string
	// MaxPending bounds the downstream messages of one app-server
	// connection that ccsd has read but not yet answered [100, spec §1.8].
	MaxPending int
	// DeviceWindow bounds the messages in flight (sent, not acked) on one
	// device session [100].
	DeviceWindow int
	// UpstreamWindow bounds the upstream messages and receipts in flight on
	// one app-server connection [100].
	UpstreamWindow int
	// UpstreamRedeliver is how long an upstream message or receipt waits for
	// the app server's ack before it is sent again, on any of the sender's
	// connections [2m].
	UpstreamRedeliver time.Duration
	// DedupWindow is how long a downstream message_id is remembered, so that
	// a retry of an accepted message is acked again but not delivered twice
	// [15m].
	DedupWindow time.Duration
	// SweepInterval is how often expired messages are deleted [1m].
	SweepInterval time.Duration
	// ZeroTTLGrace is how long a time_to_live 0 message, accepted because
	// its device was online, may wait for that session to write it [30s].
	ZeroTTLGrace time.Duration
	// UpstreamRate bounds the upstream messages one registration may send
	// per minute, with as large a burst; past it the device is nacked
	// DEVICE_MESSAGE_RATE_EXCEEDED [240; negative: unlimited].
	UpstreamRate int
	// DownstreamRate bounds the messages one registration may be sent per
	// minute, with as large a burst; past it the app server is nacked
	// DEVICE_MESSAGE_RATE_EXCEEDED [240, FCM's per-device limit; negative:
	// unlimited].
	DownstreamRate int
	// MaxUpstreamQueued and MaxUpstreamQueuedBytes cap a sender's upstream
	// queue; past either, devices are nacked SERVICE_UNAVAILABLE [100,000
	// and 256 MiB; negative: unlimited].
	MaxUpstreamQueued      int
	MaxUpstreamQueuedBytes int64
	// MaxQueuedPerRegistration bounds a registration's queued messages
	// without a collapse key; the next one replaces them all with one
	// deleted_messages message [100, GCM's; negative: unlimited].
	MaxQueuedPerRegistration int
	// MaxCollapseKeys bounds the distinct collapse keys queued per
	// registration; a new key past it deletes the registration's oldest
	// queued message with a collapse key [4, GCM's; negative: unlimited].
	MaxCollapseKeys int
	// DrainGrace bounds how long a connection drained on demand
	// (DrainConn, DrainAppServers, MaxConnectionAge) stays open for its
	// pending messages to be answered and its upstream in flight acked;
	// it is closed after it anyway [10s, --drain-grace; negative: close as
	// soon as CONNECTION_DRAINING is queued].
	DrainGrace time.Duration
	// MaxConnectionAge, when positive, drains each app-server connection
	// once it is that old, give or take 10% (jitter), as CCS closed
	// connections for load balancing [0: never].
	MaxConnectionAge time.Duration
	// TopicRate bounds the messages one sender may send to one topic per
	// minute, with as large a burst; past it the app server is nacked
	// TOPICS_MESSAGE_RATE_EXCEEDED [600; negative: unlimited].
	TopicRate int
	// MaxTopicJobs bounds one sender's topic and condition messages that
	// are accepted but not yet fanned out: each is a job, read and
	// written page by page in the background; past the bound a new one is
	// nacked TOPICS_MESSAGE_RATE_EXCEEDED (it is sent faster than it fans
	// out). Jobs resumed after a restart count, and are never refused
	// [100; negative: none].
	MaxTopicJobs int
	// FastPathDelay is how long the queue write of a downstream message
	// sent at once to an online, caught-up device is held back, waiting
	// for the device's ack: acked within it, the message is never queued,
	// only its dedup record (and delivery receipt) is written; not, it is
	// written then as it would have been at once (fastpath.go). A held
	// write waits between one and two delays; a session whose device's
	// acks take longer than the delay on average takes the queue instead,
	// until they come faster [20ms; negative: off, every message is
	// queued before it is sent].
	FastPathDelay time.Duration
	// MaxDozeDelay bounds how long a dozing device's normal-priority
	// messages are held: a session dozing that long gets a maintenance
	// window, in which every normal message queued so far is sent, and
	// one more every MaxDozeDelay while it dozes (doze.go) [15m; negative:
	// no bound, held until AWAKE].
	MaxDozeDelay time.Duration
	// Now is the clock [time.Now].
	Now func() time.Time
	// Presence tracks the live device sessions [an in-process map; a
	// cluster supplies its own].
	Presence Presence
}

func (c *Config) setDefaults() {
	if c.Domain == "" {
		c.Domain = "gcm.googleapis.com"
	}
	if c.Presence == nil {
		c.Presence = newLocalPresence()
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 100
	}
	if c.DeviceWindow <= 0 {
		c.DeviceWindow = 100
	}
	if c.UpstreamWindow <= 0 {
		c.UpstreamWindow = 100
	}
	if c.UpstreamRedeliver <= 0 {
		c.UpstreamRedeliver = 2 * time.Minute
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 15 * time.Minute
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Minute
	}
	if c.ZeroTTLGrace <= 0 {
		c.ZeroTTLGrace = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DrainGrace == 0 {
		c.DrainGrace = 10 * time.Second
	}
	if c.FastPathDelay == 0 {
		c.FastPathDelay = DefaultFastPathDelay
	}
	if c.MaxDozeDelay == 0 {
		c.MaxDozeDelay = DefaultMaxDozeDelay
	}
	defaultInt(&c.UpstreamRate, 240)
	defaultInt(&c.DownstreamRate, 240)
	defaultInt(&c.MaxUpstreamQueued, 100000)
	defaultInt(&c.MaxQueuedPerRegistration, 100)
	defaultInt(&c.MaxCollapseKeys, 4)
	defaultInt(&c.TopicRate, 600)
	defaultInt(&c.MaxTopicJobs, 100)
	if c.MaxUpstreamQueuedBytes == 0 {
		c.MaxUpstreamQueuedBytes = 256 << 20
	}
}

// DefaultFastPathDelay is Config.FastPathDelay's default: a few commits'
// worth, long enough for a device that is not far away to ack first
// (docs/decisions.md has the measurements).
const DefaultFastPathDelay = 20 * time.Millisecond

// defaultInt sets a zero limit to its default; a negative one stays
// negative, which disables it.
func defaultInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

// Router connects app-server streams, device streams and the store.
type Router struct {
	cfg     Config
	st      Store
	log     zerolog.Logger
	domains map[string]bool

	mu       sync.Mutex
	presence Presence                    // the live device sessions
	hubs     map[string]*senderHub       // per sender with app-server connections
	appConns map[string]*AppServerStream // by Conn.ID

	devMu   sync.Mutex                 // devices only: device logins never wait for r.mu
	devices map[*DeviceStream]struct{} // live device sessions of this node

	// The fast path (fastpath.go): on when FastPathDelay > 0 and Presence
	// hands out local sessions.
	fastOn      bool
	fastDelayMs int32 // FastPathDelay, ms
	local       sessionFinder
	fast        *fastQueue
	claims      atomic.Uint64 // device logins so far (see submit)
	closing     atomic.Bool   // Close began: no new fast path

	q          quotas
	topicSlots topicSlots                           // unfinished topic fan-outs per sender (topics.go)
	overflow   func(m *store.Message) store.Message // deletedMessages, bound once
	n          *counters                            // what Stats reports

	draining atomic.Bool
	ids      atomic.Uint64
	work     sync.WaitGroup // commits in progress and background loops
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns a Router and starts its expiry sweeper.
func New(cfg Config) (*Router, error) {
	if cfg.Store == nil {
		return nil, errors.New("fanout: Config.Store is required")
	}
	cfg.setDefaults()
	r := &Router{
		cfg:      cfg,
		st:       cfg.Store,
		log:      cfg.Logger,
		domains:  map[string]bool{cfg.Domain: true, "gcm.googleapis.com": true, "fcm.googleapis.com": true},
		presence: cfg.Presence,
		hubs:     make(map[string]*senderHub),
		appConns: make(map[string]*AppServerStream),
		devices:  make(map[*DeviceStream]struct{}),
		stop:     make(chan struct{}),
		n:        newCounters(),
	}
	for _, a := range cfg.Aliases {
		r.domains[a] = true
	}
	r.q = newQuotas(&r.cfg)
	r.overflow = r.deletedMessages
	r.local, _ = cfg.Presence.(sessionFinder)
	if r.local != nil && cfg.FastPathDelay > 0 {
		r.fastOn = true
		r.fastDelayMs = int32(min(cfg.FastPathDelay.Milliseconds(), 1<<30))
		r.fast = &fastQueue{r: r, delay: cfg.FastPathDelay, wake: make(chan struct{}, 1)}
		r.work.Add(1)
		go r.fast.loop()
	}
	r.work.Add(1)
	go r.sweepLoop()
	r.resumeTopicJobs()
	return r, nil
}

func (r *Router) nowMs() int64 { return r.cfg.Now().UnixMilli() }

// nextID makes the message_id of a message ccsd itself originates
// (control messages): unique per process run.
func (r *Router) nextID(prefix string) string {
	return prefix + strconv.FormatInt(r.cfg.Now().UnixNano(), 36) + "-" + strconv.FormatUint(r.ids.Add(1), 36)
}

func (r *Router) sweepLoop() {
	defer r.work.Done()
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.sweep()
		}
	}
}

// sweep deletes everything expired, in bounded store calls: each is one
// commit, so writers interleave with a long sweep instead of waiting behind
// it. Under sustained load the dedup records alone expire at the message
// rate, far beyond one bounded call a minute.
func (r *Router) sweep() {
	var total store.SweepStats
	for {
		st, err := r.st.Sweep(context.Background(), r.nowMs())
		if err != nil {
			r.log.Error().Err(err).Msg("sweep expired messages")
			return
		}
		total.Messages += st.Messages
		total.Upstream += st.Upstream
		total.Dedup += st.Dedup
		if !st.More {
			break
		}
		select {
		case <-r.stop:
			return
		default:
		}
	}
	if total.Messages+total.Upstream+total.Dedup > 0 {
		r.log.Debug().Int("messages", total.Messages).Int("upstream", total.Upstream).Int("dedup", total.Dedup).Msg("expired records swept")
	}
}

// deviceOnline reports whether a device has a live session.
func (r *Router) deviceOnline(deviceID string) bool { return r.presence.Online(deviceID) }

// localSession returns deviceID's live session on this node, if any.
func (r *Router) localSession(deviceID string) *DeviceStream {
	s, _ := r.local.Session(deviceID).(*DeviceStream)
	return s
}

// wakeDevice tells a device's session, if any, that its queue grew.
func (r *Router) wakeDevice(deviceID string) { r.presence.Wake(deviceID) }

// wakeSender tells a sender's app-server connections, if any, that its
// upstream queue grew.
func (r *Router) wakeSender(senderID string) {
	r.mu.Lock()
	h := r.hubs[senderID]
	r.mu.Unlock()
	if h != nil {
		h.wakeUp()
	}
}

// senderOnline reports whether a sender has an app-server connection that
// takes new upstream messages.
func (r *Router) senderOnline(senderID string) bool {
	r.mu.Lock()
	h := r.hubs[senderID]
	r.mu.Unlock()
	return h != nil && h.accepting()
}

// Drain sends CONNECTION_DRAINING to every app-server connection, nacks any
// downstream message that arrives after it with CONNECTION_DRAINING, waits
// until every message already read has been answered, then closes those
// connections. It returns ctx's error if that took longer than ctx allows
// (the connections are closed anyway).
func (r *Router) Drain(ctx context.Context) error {
	r.draining.Store(true)
	r.mu.Lock()
	conns := make([]*AppServerStream, 0, len(r.appConns))
	for _, c := range r.appConns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.startDrain()
	}
	var err error
	for _, c := range conns {
		if err = c.waitAnswered(ctx); err != nil {
			break
		}
	}
	for _, c := range conns {
		c.c.Close(Finished)
	}
	return err
}

// Close stops the sweeper and waits for commits in progress. Close the
// listeners first, so that no new work arrives.
func (r *Router) Close() error {
	r.closing.Store(true)
	r.stopOnce.Do(func() { close(r.stop) })
	r.work.Wait()
	return nil
}
