package main

import (
	"context"
	"time"
)

// minSleep is the shortest wait a pacer sleeps for: the timers of the
// runtime are not finer, and a message due that soon goes now, with the
// others due by then, in one batch.
const minSleep = 200 * time.Microsecond

// pacer holds a sender to a fixed offered load: message seq (counted over
// every sender of the run) is due at start + seq/rate. A sender that is
// early sleeps on one reused timer; one that is late (after a stall, or
// when a window was full) sends every message already due at once, so the
// offered rate over the run stays the one asked for. No goroutine or
// allocation per message.
type pacer struct {
	start time.Time
	perNs float64 // nanoseconds between messages
	timer *time.Timer
}

// newPacer returns a pacer for rate messages per second; with rate 0 it
// never waits.
func newPacer(start time.Time, rate float64) *pacer {
	p := &pacer{start: start}
	if rate > 0 {
		p.perNs = 1e9 / rate
	}
	return p
}

// due returns when message seq is due.
func (p *pacer) due(seq int) time.Time {
	return p.start.Add(time.Duration(float64(seq) * p.perNs))
}

// wait blocks until message seq is due; false if ctx ended first.
func (p *pacer) wait(ctx context.Context, seq int) bool {
	if p.perNs == 0 {
		return true
	}
	d := time.Until(p.due(seq))
	if d < minSleep {
		return ctx.Err() == nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop releases the timer.
func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
