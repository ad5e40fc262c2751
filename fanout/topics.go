package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/store"
)

// A message to "/topics/NAME" is accepted with one durable write, a
// store.TopicJob holding the message, and acked at once; then one
// goroutine per job (never per message copy) reads the topic's
// subscribers in pages from the job's cursor and queues each page's copies
// and the new cursor in one store write (AdvanceTopicJob). A job
// interrupted by a crash is resumed from its cursor when the router starts.

// topicPage is how many subscribers one fan-out write covers: one read
// and one commit per page, so a 100,000-subscriber topic is 100 commits.
var topicPage = 1000

// topicRetry is how long a fan-out waits after a failed store call.
const topicRetry = time.Second

// SendTopic accepts a validated message whose To is "/topics/NAME" for
// sender: it returns once the topic job is durable, with the job's id (the
// legacy HTTP answer's message_id), and fans out in the background.
func (r *Router) SendTopic(ctx context.Context, sender string, m *ccs.Downstream) (uint64, *ccs.Nack) {
	if r.draining.Load() {
		return 0, &ccs.Nack{Code: ccs.CodeServiceUnavailable, Description: "Server is shutting down, retry later"}
	}
	name, ok := ccs.TopicOf(m.To)
	if !ok || !ccs.ValidTopicName(name) {
		return 0, ccs.InvalidJSON("INVALID_PARAMETERS", "Invalid topic name: "+m.To)
	}
	if m.DryRun {
		return 0, nil
	}
	if n := r.topicAllowed(sender, name); n != nil {
		return 0, n
	}
	body, err := json.Marshal(m)
	if err != nil { // not reached: every field marshals
		return 0, storeNack(err)
	}
	j := &store.TopicJob{SenderID: sender, Topic: name, MessageID: m.MessageID, Created: r.cfg.Now(), Body: body}
	r.work.Add(1)
	defer r.work.Done()
	if err := r.st.PutTopicJob(ctx, j); err != nil {
		r.log.Error().Err(err).Str("sender", sender).Str("topic", name).Msg("store topic job")
		return 0, storeNack(err)
	}
	r.startTopicJob(*j)
	return j.ID, nil
}

// topicDownstream is the XMPP path of a topic message: written and
// answered off the reader goroutine, with the topic as the ack's "from".
func (s *AppServerStream) topicDownstream(m *ccs.Downstream) {
	s.r.work.Add(1)
	go func() {
		defer s.r.work.Done()
		_, n := s.r.SendTopic(context.Background(), s.sender, m)
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
		r.log.Info().Str("sender", j.SenderID).Str("topic", j.Topic).Str("message_id", j.MessageID).Msg("resuming topic fan-out")
		r.startTopicJob(j)
	}
}

func (r *Router) startTopicJob(j store.TopicJob) {
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		r.runTopicJob(j)
	}()
}

// runTopicJob fans one job out, page after page, until its last page is
// written or the router stops (the job then resumes at the next start).
func (r *Router) runTopicJob(j store.TopicJob) {
	log := r.log.With().Str("sender", j.SenderID).Str("topic", j.Topic).Str("message_id", j.MessageID).Logger()
	var m ccs.Downstream
	if err := json.Unmarshal(j.Body, &m); err != nil {
		log.Error().Err(err).Msg("topic job does not decode: dropped")
		_ = r.st.AdvanceTopicJob(context.Background(), j.ID, j.Cursor, true, nil)
		return
	}
	cursor, copies := j.Cursor, 0
	for {
		e, next, done, err := r.topicPage(&j, &m, cursor)
		if err == nil {
			err = r.st.AdvanceTopicJob(context.Background(), j.ID, next, done, e)
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
		copies += len(e.Messages)
		if done {
			log.Debug().Int("copies", copies).Msg("topic fan-out done")
			return
		}
		cursor = next
		if !r.pause(0) {
			return
		}
	}
}

// topicPage renders the copies for the subscribers after cursor: the
// write, the new cursor, and whether this is the last page.
func (r *Router) topicPage(j *store.TopicJob, m *ccs.Downstream, cursor string) (*store.Enqueue, string, bool, error) {
	regs, err := r.st.Subscribers(j.SenderID, j.Topic, cursor, topicPage)
	if err != nil {
		return nil, "", false, err
	}
	p := &plan{e: r.bound(&store.Enqueue{SenderID: j.SenderID})}
	from, now := ccs.TopicPrefix+j.Topic, j.Created.UnixMilli()
	for _, reg := range regs {
		if m.RestrictedPackage != "" && m.RestrictedPackage != reg.App {
			continue
		}
		r.addCopy(p, m, reg, from, "", now)
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
