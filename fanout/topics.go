package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// A message to "/topics/NAME" (or to a "condition" of topics) is accepted
// with one durable write, a store.TopicJob holding the message, and acked
// at once; then one goroutine per job (never per message copy) reads the
// subscribers in pages from the job's cursor and queues each page's copies
// and the new cursor in one store write (AdvanceTopicJob). A job
// interrupted by a crash is resumed from its cursor when the router starts.
//
// A condition's job reads the subscribers of each of its topics in turn
// (Step), and queues a copy for a registration whose subscriptions satisfy
// the condition at the step of the first of its topics it holds, so that a
// registration in several of them gets one copy. ccs.ParseCondition
// refuses a condition true for a registration subscribed to none of its
// topics: every registration it reaches is a subscriber of one of them.

// topicPage is how many subscribers one fan-out write covers: one read
// and one commit per page, so a 100,000-subscriber topic is 100 commits.
var topicPage = 1000

// topicRetry is how long a fan-out waits after a failed store call.
const topicRetry = time.Second

// SendTopic accepts a validated message whose To is "/topics/NAME", or
// which has a Condition, for sender: it returns once the topic job is
// durable, with the job's id (the legacy HTTP answer's message_id), and
// fans out in the background.
// It serves the HTTP endpoints and counts its answer as Send does; XMPP
// streams count theirs when they reply.
func (r *Router) SendTopic(ctx context.Context, sender string, m *ccs.Downstream) (uint64, *ccs.Nack) {
	id, n := r.sendTopic(ctx, sender, m)
	if n != nil {
		r.n.nack(ToAppServer, n)
	} else {
		r.n.downHTTP.Inc()
	}
	return id, n
}

func (r *Router) sendTopic(ctx context.Context, sender string, m *ccs.Downstream) (uint64, *ccs.Nack) {
	if r.draining.Load() {
		return 0, &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Server is shutting down, retry later"}
	}
	j, topics, n := newTopicJob(sender, m)
	if n != nil || m.DryRun {
		return 0, n
	}
	for _, t := range topics {
		if n := r.topicAllowed(sender, t); n != nil {
			return 0, n
		}
	}
	if !r.topicSlots.take(sender, r.cfg.MaxTopicJobs) {
		return 0, &ccs.Nack{Code: ccs.CodeTopicsMessageRateExceeded, Description: fmt.Sprintf(
			"%d topic messages of this sender are still fanning out; retry later", r.cfg.MaxTopicJobs)}
	}
	return r.putTopicJob(ctx, j, m)
}

// putTopicJob writes the job of m and starts its fan-out, which takes
// over the sender's topic slot; 0 and no nack for a retry of a message
// already accepted. Unless the fan-out starts it gives the slot back.
func (r *Router) putTopicJob(ctx context.Context, j *store.TopicJob, m *ccs.Downstream) (uint64, *ccs.Nack) {
	sender := j.SenderID
	started := false
	defer func() {
		if !started {
			r.topicSlots.release(sender)
		}
	}()
	body, err := json.Marshal(m)
	if err != nil { // not reached: every field marshals
		return 0, storeNack(err)
	}
	j.Created, j.Body = r.cfg.Now(), body
	j.DedupUntil = j.Created.UnixMilli() + r.cfg.DedupWindow.Milliseconds()
	r.work.Add(1)
	defer r.work.Done()
	err = r.st.PutTopicJob(ctx, j)
	if errors.Is(err, store.ErrDuplicate) {
		return 0, nil // a retry of a message already accepted: acked, not sent again
	}
	if err != nil {
		r.log.Error().Err(err).Str("sender", sender).Str("topic", j.Topic).Str("condition", j.Condition).Msg("store topic job")
		return 0, storeNack(err)
	}
	r.startTopicJob(*j)
	started = true
	return j.ID, nil
}

// newTopicJob checks m's topic or condition and returns its job (without
// time and body) and the topics it reads.
func newTopicJob(sender string, m *ccs.Downstream) (*store.TopicJob, []string, *ccs.Nack) {
	j := &store.TopicJob{SenderID: sender, MessageID: m.MessageID}
	if m.Condition != "" {
		c, n := ccs.ParseCondition(m.Condition)
		if n != nil {
			return nil, nil, n
		}
		j.Condition = m.Condition
		return j, c.Topics(), nil
	}
	name, ok := ccs.TopicOf(m.To)
	if !ok || !ccs.ValidTopicName(name) {
		return nil, nil, ccs.InvalidJSON("INVALID_PARAMETERS", "Invalid topic name: "+m.To)
	}
	j.Topic = name
	return j, []string{name}, nil
}

// topicDownstream is the XMPP path of a topic or condition message:
// written and answered off the reader goroutine, with the topic as the
// ack's "from" (none for a condition).
func (s *AppServerStream) topicDownstream(m *ccs.Downstream) {
	s.r.work.Add(1)
	go func() {
		defer s.r.work.Done()
		_, n := s.r.sendTopic(context.Background(), s.sender, m)
		s.reply(m.MessageID, &plan{to: m.To}, n)
	}()
}

// resumeTopicJobs restarts every fan-out a previous run left unfinished.
func (r *Router) resumeTopicJobs() {
	jobs, err := r.st.TopicJobs()
	if err != nil {
		r.log.Error().Err(err).Msg("read topic jobs to resume")
		return
	}
	for _, j := range jobs {
		r.log.Info().Str("sender", j.SenderID).Str("topic", j.Topic).Str("condition", j.Condition).Str("message_id", j.MessageID).Msg("resuming topic fan-out")
		r.topicSlots.take(j.SenderID, 0)
		r.startTopicJob(j)
	}
}

// startTopicJob fans j out in the background; j holds one of its
// sender's topic slots, which the fan-out gives back when it ends.
func (r *Router) startTopicJob(j store.TopicJob) {
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		defer r.topicSlots.release(j.SenderID)
		r.runTopicJob(j)
	}()
}

// topicSlots counts each sender's unfinished topic fan-outs, the bound of
// Config.MaxTopicJobs: each one is a goroutine and page after page of
// store work, so a sender must not start them faster than they finish
// without a limit.
type topicSlots struct {
	mu sync.Mutex
	n  map[string]int
}

// take reserves a slot of sender's; false if it already holds max
// (max <= 0: no bound).
func (s *topicSlots) take(sender string, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max > 0 && s.n[sender] >= max {
		return false
	}
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[sender]++
	return true
}

// total is how many fan-outs are unfinished, every sender together.
func (s *topicSlots) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.n {
		n += c
	}
	return n
}

func (s *topicSlots) release(sender string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[sender] <= 1 {
		delete(s.n, sender)
		return
	}
	s.n[sender]--
}

// topicRun is one job's fan-out state: the message, what it reads, and
// where it is.
type topicRun struct {
	j      store.TopicJob
	m      ccs.Downstream
	cond   *ccs.Condition // nil: one topic
	topics []string
	from   string // the copies' "from": the topic, or the sender for a condition
}

func (r *Router) openTopicRun(j store.TopicJob) (*topicRun, error) {
	t := &topicRun{j: j, topics: []string{j.Topic}, from: ccs.TopicPrefix + j.Topic}
	if err := json.Unmarshal(j.Body, &t.m); err != nil {
		return nil, err
	}
	if j.Condition != "" {
		c, n := ccs.ParseCondition(j.Condition)
		if n != nil {
			return nil, n
		}
		t.cond, t.topics, t.from = c, c.Topics(), j.SenderID
	}
	return t, nil
}

// runTopicJob fans one job out, page after page, until its last page is
// written or the router stops (the job then resumes at the next start).
func (r *Router) runTopicJob(j store.TopicJob) {
	log := r.log.With().Str("sender", j.SenderID).Str("topic", j.Topic).Str("condition", j.Condition).Str("message_id", j.MessageID).Logger()
	t, err := r.openTopicRun(j)
	if err != nil {
		log.Error().Err(err).Msg("topic job does not decode: dropped")
		_ = r.st.AdvanceTopicJob(context.Background(), j.ID, j.Step, j.Cursor, true, nil)
		return
	}
	if r.topicExpired(t) {
		// Resumed after its time_to_live: every copy would be dead on
		// arrival, so none is written.
		log.Info().Msg("topic job expired before its fan-out finished: dropped")
		_ = r.st.AdvanceTopicJob(context.Background(), j.ID, j.Step, j.Cursor, true, nil)
		return
	}
	step, cursor, copies := j.Step, j.Cursor, 0
	for step < len(t.topics) {
		e, next, last, err := r.topicPage(t, step, cursor)
		nextStep := step
		if last {
			nextStep, next = step+1, ""
		}
		done := nextStep >= len(t.topics)
		if err == nil {
			err = r.st.AdvanceTopicJob(context.Background(), j.ID, nextStep, next, done, e)
		}
		switch {
		case errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrNotFound):
			return
		case err != nil:
			log.Error().Err(err).Msg("topic fan-out page: retrying")
			if !r.pause(topicRetry) {
				return
			}
			continue
		}
		for i := range e.Messages {
			r.wakeDevice(e.Messages[i].DeviceID)
		}
		r.n.topicCopies.Add(uint64(len(e.Messages)))
		copies += len(e.Messages)
		step, cursor = nextStep, next
		if !done && !r.pause(0) {
			return
		}
	}
	log.Debug().Int("copies", copies).Msg("topic fan-out done")
}

// topicExpired reports whether every copy of the job would already be
// expired: its time_to_live (or, for 0, the grace addCopy gives) counted
// from the accept has passed.
func (r *Router) topicExpired(t *topicRun) bool {
	life := t.m.TTL * 1000
	if t.m.TTL == 0 {
		life = r.cfg.ZeroTTLGrace.Milliseconds()
	}
	return r.nowMs() > t.j.Created.UnixMilli()+life
}

// topicPage renders the copies for the subscribers of step's topic after
// cursor: the write, the new cursor, and whether this was the step's last
// page.
func (r *Router) topicPage(t *topicRun, step int, cursor string) (*store.Enqueue, string, bool, error) {
	regs, err := r.st.Subscribers(t.j.SenderID, t.topics[step], cursor, topicPage)
	if err != nil {
		return nil, "", false, err
	}
	var masks []uint32
	if t.cond != nil && len(regs) > 0 {
		ids := make([]string, len(regs))
		for i := range regs {
			ids[i] = regs[i].ID
		}
		if masks, err = r.st.Memberships(ids, t.topics); err != nil {
			return nil, "", false, err
		}
	}
	p := &plan{e: r.bound(&store.Enqueue{SenderID: t.j.SenderID})}
	now := t.j.Created.UnixMilli()
	earlier := uint32(1)<<step - 1 // the topics of the steps already read
	for i, reg := range regs {
		if t.cond != nil && (masks[i]&earlier != 0 || !t.cond.Eval(masks[i])) {
			continue // had its copy at an earlier step, or does not match
		}
		if t.m.RestrictedPackage != "" && t.m.RestrictedPackage != reg.App {
			continue
		}
		r.addCopy(p, &t.m, reg, t.from, "", now)
	}
	if len(regs) > 0 {
		cursor = regs[len(regs)-1].ID
	}
	return p.e, cursor, len(regs) < topicPage, nil
}

// pause waits d, or returns false at once if the router is stopping.
func (r *Router) pause(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-r.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.stop:
		return false
	case <-t.C:
		return true
	}
}
