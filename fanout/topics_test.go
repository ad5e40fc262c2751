package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// smallPages makes a fan-out write pages of n subscribers for one test.
func smallPages(t *testing.T, n int) {
	old := topicPage
	topicPage = n
	t.Cleanup(func() { topicPage = old })
}

// subscribeAll subscribes reg<i> for every i in ids to sender 123's topic.
func subscribeAll(t testing.TB, db store.Backend, topic string, ids ...int) []string {
	t.Helper()
	var regs []string
	for _, i := range ids {
		regs = append(regs, "reg"+strconv.Itoa(i))
	}
	errs, err := db.Subscribe(context.Background(), "123", topic, regs, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("subscribe %s: %v", regs[i], e)
		}
	}
	slices.Sort(regs)
	return regs
}

func topicMessage(t testing.TB, payload string) *ccs.Downstream {
	t.Helper()
	st, serr := ccs.Decode([]byte(payload))
	if serr != nil {
		t.Fatal(serr.Text)
	}
	m, n := st.Downstream()
	if n != nil {
		t.Fatal(n.Description)
	}
	return m
}

// queued reports, per device, the message ids queued for it.
func queuedFor(t *testing.T, db store.Backend, dev string) []string {
	t.Helper()
	ms, err := db.Pending(dev, 0, 0, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	return ids(ms)
}

func ids(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}

func waitJobsDone(t *testing.T, db store.Backend) {
	waitFor(t, "the topic jobs to finish", func() bool {
		jobs, err := db.TopicJobs()
		return err == nil && len(jobs) == 0
	})
}

// TestTopicFanOutInPages: a topic message reaches every subscriber and
// nobody else (not the other registrations, not another sender's topic of
// the same name), written a page per commit after a one-write accept.
func TestTopicFanOutInPages(t *testing.T) {
	smallPages(t, 4)
	r, db, _ := newTestRouter(t, 20)
	subscribeAll(t, db, "news", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
	if _, err := db.Register(store.Registration{ID: "other", DeviceID: "dev19", SenderID: "999", App: "com.example"}); err != nil {
		t.Fatal(err)
	}
	if errs, err := db.Subscribe(context.Background(), "999", "news", []string{"other"}, 0); err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	before := db.Stats().Commits
	id, n := r.SendTopic(context.Background(), "123", topicMessage(t, `{"to":"/topics/news","message_id":"t-1","data":{"k":"v"}}`))
	if n != nil || id == 0 {
		t.Fatalf("SendTopic = %d, %v", id, n)
	}
	waitJobsDone(t, db)
	for i := range 20 {
		got := queuedFor(t, db, "dev"+strconv.Itoa(i))
		want := []string(nil)
		if i < 15 {
			want = []string{"t-1"}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("dev%d queued %v, want %v", i, got, want)
		}
	}
	ms, _ := db.Pending("dev0", 0, 0, time.Now().UnixMilli())
	if !strings.Contains(string(ms[0].Payload), `"from":"/topics/news"`) {
		t.Fatalf("copy %s lacks from /topics/news", ms[0].Payload)
	}
	// 1 job write + 4 pages of 4 (the last one short of 4 ends it).
	if c := db.Stats().Commits - before; c > 5 {
		t.Fatalf("a 15-subscriber topic took %d commits, want at most 5", c)
	}
}

// TestTopicJobResumesFromCursor: a job a previous run left with a cursor
// is resumed when the router starts, and queues copies exactly for the
// subscribers after the cursor.
func TestTopicJobResumesFromCursor(t *testing.T) {
	smallPages(t, 3)
	db, _ := newTestStore(t, 12)
	subs := subscribeAll(t, db, "t", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	body := topicMessage(t, `{"to":"/topics/t","message_id":"t-9"}`)
	j := &store.TopicJob{SenderID: "123", Topic: "t", MessageID: "t-9", Cursor: subs[4], Created: time.Now(), Body: mustJSON(t, body)}
	if err := db.PutTopicJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitJobsDone(t, db)
	for i, reg := range subs {
		dev := "dev" + strings.TrimPrefix(reg, "reg")
		got := queuedFor(t, db, dev)
		if want := i > 4; (len(got) == 1) != want {
			t.Fatalf("%s (position %d after cursor %s) queued %v", reg, i, subs[4], got)
		}
	}
}

// TestTopicAckFromIsTopic: over XMPP the ack of a topic message carries
// the topic as its "from"; a bad topic name is nacked.
func TestTopicAckFromIsTopic(t *testing.T) {
	r, _, _ := streamRouter(t, 2, Config{})
	s, c := openApp(t, r)
	defer s.Closed()
	s.Message("st-1", []byte(`{"to":"/topics/news","message_id":"t-1"}`))
	s.Message("st-2", []byte(`{"to":"/topics/bad name","message_id":"t-2"}`))
	waitFor(t, "two answers", func() bool { return len(c.payloads()) == 2 })
	got := strings.Join(c.payloads(), "\n")
	if !strings.Contains(got, `{"from":"/topics/news","message_id":"t-1","message_type":"ack"}`) ||
		!strings.Contains(got, `"message_id":"t-2","message_type":"nack","error":"INVALID_JSON"`) {
		t.Fatalf("answers:\n%s", got)
	}
}

// BenchmarkTopicFanOut100k measures the fan-out of one message to a topic
// of 100,000 subscribers on a real bbolt file: from the accept to the
// last page written. Setup (registrations, subscriptions) is untimed.
func BenchmarkTopicFanOut100k(b *testing.B) {
	const n = 100000
	db, err := bolt.Open(b.TempDir()+"/ccsd.db", bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	registerMany(b, db, n)
	regs := make([]string, n)
	for i := range regs {
		regs[i] = fmt.Sprintf("reg%06d", i)
	}
	for i := 0; i < n; i += 1000 {
		if _, err := db.Subscribe(context.Background(), "123", "big", regs[i:i+1000], 0); err != nil {
			b.Fatal(err)
		}
	}
	r, err := New(Config{Store: db, MaxQueuedPerRegistration: -1, MaxCollapseKeys: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	m := topicMessage(b, `{"to":"/topics/big","message_id":"b","data":{"k":"v"}}`)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, nk := r.SendTopic(context.Background(), "123", m); nk != nil {
			b.Fatal(nk.Description)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			if jobs, _ := db.TopicJobs(); len(jobs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the topic job did not finish within a minute")
			}
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "copies/s")
}

// registerMany registers reg000000.. for sender 123 from many goroutines,
// so the group committer batches them.
func registerMany(b *testing.B, db *bolt.DB, n int) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := fmt.Sprintf("%06d", i)
				if _, err := db.Register(store.Registration{ID: "reg" + id, DeviceID: "dev" + id, SenderID: "123", App: "com.example"}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func mustJSON(t testing.TB, m *ccs.Downstream) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// crashAt is the store with a crash at the n-th page write: that write and
// every later one fail unwritten, as when the process dies before it.
type crashAt struct {
	Store
	mu    sync.Mutex
	n     int
	pages int
}

func (c *crashAt) AdvanceTopicJob(ctx context.Context, id uint64, step int, cursor string, done bool, e *store.Enqueue) error {
	c.mu.Lock()
	c.pages++
	crashed := c.pages >= c.n
	c.mu.Unlock()
	if crashed {
		return store.ErrClosed
	}
	return c.Store.AdvanceTopicJob(ctx, id, step, cursor, done, e)
}

// TestTopicJobSurvivesCrash: a fan-out that dies after 9 of its 40 pages
// (as SIGKILL would stop it, between two page writes) leaves the job with
// its cursor; a new router on the same store finishes it, and every
// subscriber ends with exactly one copy: no page twice, none skipped.
func TestTopicJobSurvivesCrash(t *testing.T) {
	smallPages(t, 1)
	db, _ := newTestStore(t, 40)
	all := make([]int, 40)
	for i := range all {
		all[i] = i
	}
	subs := subscribeAll(t, db, "t", all...)
	crash := &crashAt{Store: db, n: 10}
	r, err := New(Config{Store: crash})
	if err != nil {
		t.Fatal(err)
	}
	if _, n := r.SendTopic(context.Background(), "123", topicMessage(t, `{"to":"/topics/t","message_id":"s-1"}`)); n != nil {
		t.Fatal(n.Description)
	}
	waitFor(t, "the crash", func() bool { crash.mu.Lock(); defer crash.mu.Unlock(); return crash.pages >= crash.n })
	r.Close()
	jobs, _ := db.TopicJobs()
	if len(jobs) != 1 || jobs[0].Cursor != subs[8] {
		t.Fatalf("after the crash: %d jobs (cursor %v), want one with cursor %s", len(jobs), jobs, subs[8])
	}
	r2, err := New(Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	waitJobsDone(t, db)
	for i := range 40 {
		if got := queuedFor(t, db, "dev"+strconv.Itoa(i)); len(got) != 1 {
			t.Fatalf("dev%d queued %v, want exactly one copy", i, got)
		}
	}
}

// TestTopicRate: past TopicRate messages a minute to one topic the sender
// is refused TOPICS_MESSAGE_RATE_EXCEEDED, with nothing stored; another
// topic, and the same name of another sender, have their own budget; a
// dry run spends nothing.
func TestTopicRate(t *testing.T) {
	db, _ := newTestStore(t, 1)
	r, err := New(Config{Store: db, TopicRate: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	send := func(sender, to string, dry bool) *ccs.Nack {
		m := topicMessage(t, `{"to":"`+to+`","message_id":"x"}`)
		m.DryRun = dry
		_, n := r.SendTopic(context.Background(), sender, m)
		return n
	}
	if n := send("123", "/topics/a", true); n != nil {
		t.Fatalf("dry run: %v", n)
	}
	for i := range 2 {
		if n := send("123", "/topics/a", false); n != nil {
			t.Fatalf("send %d: %v", i, n)
		}
	}
	waitJobsDone(t, db)
	n := send("123", "/topics/a", false)
	if n == nil || n.Code != ccs.CodeTopicsMessageRateExceeded {
		t.Fatalf("third send in the minute: %v, want TOPICS_MESSAGE_RATE_EXCEEDED", n)
	}
	if name, ok := n.HTTPError(); !ok || name != "TopicsMessageRateExceeded" {
		t.Fatalf("HTTP name %q %v", name, ok)
	}
	if jobs, _ := db.TopicJobs(); len(jobs) != 0 {
		t.Fatalf("a refused send stored a job: %+v", jobs)
	}
	if n := send("123", "/topics/b", false); n != nil {
		t.Fatalf("another topic: %v", n)
	}
	if n := send("999", "/topics/a", false); n != nil {
		t.Fatalf("another sender's topic of the same name: %v", n)
	}
}

// TestConditionFanOut: a condition reaches exactly the registrations whose
// subscriptions satisfy it, one copy each even when they hold several of
// its topics, read topic after topic in pages.
func TestConditionFanOut(t *testing.T) {
	smallPages(t, 1)
	r, db, _ := newTestRouter(t, 6)
	subscribeAll(t, db, "a", 0, 1, 4)
	subscribeAll(t, db, "b", 1, 2)
	subscribeAll(t, db, "c", 3, 4)
	m := topicMessage(t, `{"condition":"'a' in topics && !('c' in topics) || 'b' in topics","message_id":"c-1"}`)
	if _, n := r.SendTopic(context.Background(), "123", m); n != nil {
		t.Fatal(n.Description)
	}
	waitJobsDone(t, db)
	for i, want := range []int{1, 1, 1, 0, 0, 0} {
		got := queuedFor(t, db, "dev"+strconv.Itoa(i))
		if len(got) != want {
			t.Fatalf("dev%d queued %v, want %d copies", i, got, want)
		}
	}
	ms, _ := db.Pending("dev1", 0, 0, time.Now().UnixMilli())
	if !strings.Contains(string(ms[0].Payload), `"from":"123"`) {
		t.Fatalf("a condition copy %s: want from the sender", ms[0].Payload)
	}
	// Over XMPP: acked, without a "from".
	sr, _, _ := streamRouter(t, 1, Config{})
	s, c := openApp(t, sr)
	defer s.Closed()
	s.Message("st-1", []byte(`{"condition":"'a' in topics","message_id":"c-2"}`))
	waitFor(t, "the answer", func() bool { return len(c.payloads()) == 1 })
	if got := c.payloads()[0]; got != `{"message_id":"c-2","message_type":"ack"}` {
		t.Fatalf("condition ack %s", got)
	}
}

// TestTopicRetryIsDeduplicated: an app server's retry of a topic message
// (same message_id within the dedup window) is acked and not fanned out
// again.
func TestTopicRetryIsDeduplicated(t *testing.T) {
	r, db, _ := newTestRouter(t, 2)
	subscribeAll(t, db, "t", 0, 1)
	for range 2 {
		if _, n := r.SendTopic(context.Background(), "123", topicMessage(t, `{"to":"/topics/t","message_id":"again"}`)); n != nil {
			t.Fatal(n.Description)
		}
	}
	waitJobsDone(t, db)
	for _, dev := range []string{"dev0", "dev1"} {
		if got := queuedFor(t, db, dev); len(got) != 1 {
			t.Fatalf("%s queued %v, want one copy", dev, got)
		}
	}
}

// TestTopicJobPastItsTTL: a job resumed after its message's time_to_live
// is dropped without writing copies that would be dead on arrival.
func TestTopicJobPastItsTTL(t *testing.T) {
	db, _ := newTestStore(t, 2)
	subscribeAll(t, db, "t", 0, 1)
	m := topicMessage(t, `{"to":"/topics/t","message_id":"old","time_to_live":60}`)
	j := &store.TopicJob{SenderID: "123", Topic: "t", MessageID: "old", Created: time.Now().Add(-2 * time.Minute), Body: mustJSON(t, m)}
	if err := db.PutTopicJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitJobsDone(t, db)
	for _, dev := range []string{"dev0", "dev1"} {
		if n, _ := db.QueueLen(dev); n != 0 {
			t.Fatalf("%s holds %d copies of an expired topic message", dev, n)
		}
	}
}

// gatedPages holds every topic page write until open is closed: fan-outs
// that stay unfinished as long as the test wants.
type gatedPages struct {
	Store
	open chan struct{}
}

func (g *gatedPages) AdvanceTopicJob(ctx context.Context, id uint64, step int, cursor string, done bool, e *store.Enqueue) error {
	<-g.open
	return g.Store.AdvanceTopicJob(ctx, id, step, cursor, done, e)
}

// TestMaxTopicJobs: a sender holding MaxTopicJobs unfinished fan-outs is
// refused TOPICS_MESSAGE_RATE_EXCEEDED for the next topic message, with
// nothing stored (a retry of an accepted one too: it is retryable, and
// the dedup record answers it once there is room); another sender has its
// own bound; once the fan-outs finish the sender may send again.
func TestMaxTopicJobs(t *testing.T) {
	db, _ := newTestStore(t, 2)
	subscribeAll(t, db, "t", 0, 1)
	g := &gatedPages{Store: db, open: make(chan struct{})}
	r, err := New(Config{Store: g, MaxTopicJobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opened := false
	defer func() {
		if !opened {
			close(g.open)
		}
	}()
	send := func(sender, id string) *ccs.Nack {
		_, n := r.SendTopic(context.Background(), sender, topicMessage(t, `{"to":"/topics/t","message_id":"`+id+`"}`))
		return n
	}
	for _, id := range []string{"a", "b"} {
		if n := send("123", id); n != nil {
			t.Fatalf("send %s: %v", id, n)
		}
	}
	n := send("123", "c")
	if n == nil || n.Code != ccs.CodeTopicsMessageRateExceeded {
		t.Fatalf("a third unfinished fan-out: %v, want TOPICS_MESSAGE_RATE_EXCEEDED", n)
	}
	if jobs, _ := db.TopicJobs(); len(jobs) != 2 {
		t.Fatalf("%d jobs stored, want the 2 accepted", len(jobs))
	}
	if n := send("999", "x"); n != nil {
		t.Fatalf("another sender: %v", n)
	}
	st := r.Stats()
	if st.TopicJobs != 3 || st.Nacks[ToAppServer][slices.Index(NackCodes, ccs.CodeTopicsMessageRateExceeded)] != 1 {
		t.Fatalf("Stats: %d topic jobs (want 3 unfinished), nacks %v (want one TOPICS_MESSAGE_RATE_EXCEEDED)", st.TopicJobs, st.Nacks[ToAppServer])
	}
	close(g.open)
	opened = true
	waitJobsDone(t, db)
	waitFor(t, "the slots back", func() bool { return send("123", "c") == nil })
	if n := send("123", "a"); n != nil {
		t.Fatalf("a retry of an accepted message: %v, want its ack", n)
	}
	waitJobsDone(t, db)
	if got := queuedFor(t, db, "dev0"); len(got) != 3 {
		t.Fatalf("dev0 queued %v, want one copy of each of a, b, c", got)
	}
	// a, b and c reached both subscribers; x, of a sender with none, no one.
	waitFor(t, "the gauge back at 0", func() bool { return r.Stats().TopicJobs == 0 })
	if st := r.Stats(); st.TopicCopies != 6 || st.DownstreamHTTP != 5 {
		t.Fatalf("Stats: %d topic copies (want 6), %d accepted (want 5: a, b, x, c and the retry of a)", st.TopicCopies, st.DownstreamHTTP)
	}
}
