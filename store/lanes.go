package store

// Lane is the delivery class of a queued message, from its priority and
// delay_while_idle. A device session walks its queue in Seq order (the
// normal walk) and, beside it, the urgent lane, so a high-priority message
// overtakes a backlog of normal ones and reaches a dozing device; the idle
// lane lets a session find the delay_while_idle messages it held back while
// the device dozed (fanout/lanes.go).
type Lane uint8

const (
	// LaneNormal: priority normal (or absent), not delay_while_idle.
	LaneNormal Lane = iota
	// LaneUrgent: priority high, not delay_while_idle.
	LaneUrgent
	// LaneIdle: delay_while_idle, whatever the priority.
	LaneIdle
)

// Lane is m's lane.
func (m *Message) Lane() Lane {
	switch {
	case m.DelayWhileIdle:
		return LaneIdle
	case m.High:
		return LaneUrgent
	}
	return LaneNormal
}
