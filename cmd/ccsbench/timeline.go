package main

import "time"

// maxTimeline bounds the per-second buckets kept (one hour).
const maxTimeline = 3600

// second is one second of a run: what happened in [T, T+1) seconds after
// the start. Latencies are those of the events counted in that second.
type second struct {
	T            int     `json:"t"`
	Sent         int64   `json:"sent,omitempty"`
	Accepted     int64   `json:"accepted,omitempty"`
	Delivered    int64   `json:"delivered,omitempty"`
	Logins       int64   `json:"logins,omitempty"`
	AckP50       float64 `json:"ack_p50_ms,omitempty"`
	AckP99       float64 `json:"ack_p99_ms,omitempty"`
	DeliveryP50  float64 `json:"delivery_p50_ms,omitempty"`
	DeliveryP99  float64 `json:"delivery_p99_ms,omitempty"`
	LoginP50     float64 `json:"login_p50_ms,omitempty"`
	LoginP99     float64 `json:"login_p99_ms,omitempty"`
	ackNs, delNs []int64
}

// buckets returns the bucket of time at (ns since the start), growing ss;
// nil past maxTimeline.
func buckets(ss *[]second, at int64) *second {
	i := int(at / int64(time.Second))
	if i < 0 || i >= maxTimeline {
		return nil
	}
	for len(*ss) <= i {
		*ss = append(*ss, second{T: len(*ss)})
	}
	return &(*ss)[i]
}

// timeline buckets the messages of a message scenario per second: sends
// by their send time, acks and copies by their arrival.
func (b *bench) timeline() []second {
	var ss []second
	for seq := 0; seq < b.n; seq++ {
		st := b.state[seq].Load()
		if st == stUnsent {
			continue
		}
		sent := b.sentAt[seq].Load()
		if s := buckets(&ss, sent); s != nil {
			s.Sent++
		}
		if st == stAcked {
			at := b.ackAt[seq].Load()
			if s := buckets(&ss, at); s != nil {
				s.Accepted++
				s.ackNs = append(s.ackNs, at-sent)
			}
		}
		for pos := 0; pos < b.copies; pos++ {
			i := seq*b.copies + pos
			if b.counts[i].Load() == 0 {
				continue
			}
			at := b.firstAt[i].Load()
			if s := buckets(&ss, at); s != nil {
				s.Delivered++
				s.delNs = append(s.delNs, at-sent)
			}
		}
	}
	for i := range ss {
		s := &ss[i]
		a, d := summarize(s.ackNs), summarize(s.delNs)
		s.AckP50, s.AckP99, s.DeliveryP50, s.DeliveryP99 = a.P50, a.P99, d.P50, d.P99
		s.ackNs, s.delNs = nil, nil
	}
	return ss
}

// loginTimeline buckets the logins per second by their completion.
func loginTimeline(dialers []*loginDialer) []second {
	var ss []second
	for _, d := range dialers {
		for k, at := range d.at {
			if s := buckets(&ss, at); s != nil {
				s.Logins++
				s.ackNs = append(s.ackNs, d.lat[k])
			}
		}
	}
	for i := range ss {
		s := &ss[i]
		l := summarize(s.ackNs)
		s.LoginP50, s.LoginP99 = l.P50, l.P99
		s.ackNs = nil
	}
	return ss
}
