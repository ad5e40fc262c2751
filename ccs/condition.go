package ccs

import "strings"

// MaxConditionTopics bounds the topics one condition may name, as FCM does.
const MaxConditionTopics = 5

// MaxConditionBytes bounds a condition's text: five 900-byte names and
// their operators.
const MaxConditionBytes = MaxConditionTopics*(MaxTopicNameBytes+16) + 64

// Condition is a parsed "condition": a boolean expression of
// 'NAME' in topics with &&, || and ! and parentheses. ! binds tighter than
// &&, which binds tighter than ||; the words "in" and "topics" are read in
// any case.
type Condition struct {
	topics []string // distinct names, in order of first mention
	root   *condNode
}

type condNode struct {
	op          byte // 't' topic (idx), '!' not (l), '&' and, '|' or
	idx         int
	left, right *condNode
}

// Topics lists the distinct topics the condition names; bit i of the mask
// Eval reads stands for Topics()[i].
func (c *Condition) Topics() []string { return c.topics }

// Eval reports whether a registration subscribed to the topics whose bits
// are set in mask satisfies the condition.
func (c *Condition) Eval(mask uint32) bool { return c.root.eval(mask) }

func (n *condNode) eval(mask uint32) bool {
	switch n.op {
	case 't':
		return mask&(1<<n.idx) != 0
	case '!':
		return !n.left.eval(mask)
	case '&':
		return n.left.eval(mask) && n.right.eval(mask)
	default:
		return n.left.eval(mask) || n.right.eval(mask)
	}
}

// ParseCondition parses and checks a condition: valid topic names, at most
// MaxConditionTopics of them, and at least one topic every matching
// registration must hold (a condition true for a registration subscribed
// to none, such as !('a' in topics), would address every registration of
// the sender, which topic messaging never does). A refusal is INVALID_JSON
// / INVALID_PARAMETERS.
func ParseCondition(s string) (*Condition, *Nack) {
	if len(s) > MaxConditionBytes {
		return nil, condError("the condition is too long")
	}
	p := &condParser{s: s, c: &Condition{}}
	root, msg := p.or()
	if p.skip(); msg == "" && p.i < len(p.s) {
		msg = "unexpected " + clipText(p.s[p.i:])
	}
	if msg != "" {
		return nil, condError(msg)
	}
	p.c.root = root
	if root.eval(0) {
		return nil, condError("the condition must require at least one topic (it is true for a registration subscribed to none)")
	}
	return p.c, nil
}

func condError(msg string) *Nack {
	return InvalidJSON("INVALID_PARAMETERS", "Invalid condition: "+msg)
}

func clipText(s string) string {
	if len(s) > 32 {
		return strings.TrimSpace(s[:32]) + "..."
	}
	return s
}

type condParser struct {
	s     string
	i     int
	c     *Condition
	depth int
}

func (p *condParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// eat consumes tok (case-insensitive) if it comes next.
func (p *condParser) eat(tok string) bool {
	p.skip()
	if len(p.s)-p.i >= len(tok) && strings.EqualFold(p.s[p.i:p.i+len(tok)], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *condParser) or() (*condNode, string) {
	l, msg := p.and()
	for msg == "" && p.eat("||") {
		var r *condNode
		if r, msg = p.and(); msg == "" {
			l = &condNode{op: '|', left: l, right: r}
		}
	}
	return l, msg
}

func (p *condParser) and() (*condNode, string) {
	l, msg := p.unary()
	for msg == "" && p.eat("&&") {
		var r *condNode
		if r, msg = p.unary(); msg == "" {
			l = &condNode{op: '&', left: l, right: r}
		}
	}
	return l, msg
}

func (p *condParser) unary() (*condNode, string) {
	if p.depth++; p.depth > 64 {
		return nil, "nested too deeply"
	}
	defer func() { p.depth-- }()
	switch {
	case p.eat("!"):
		n, msg := p.unary()
		return &condNode{op: '!', left: n}, msg
	case p.eat("("):
		n, msg := p.or()
		if msg == "" && !p.eat(")") {
			msg = "missing )"
		}
		return n, msg
	}
	return p.atom()
}

// atom reads 'NAME' in topics (or "NAME").
func (p *condParser) atom() (*condNode, string) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return nil, "expected 'TOPIC' in topics"
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return nil, "unterminated topic name"
	}
	name := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	if !ValidTopicName(name) {
		return nil, "invalid topic name " + clipText(name)
	}
	if !p.eat("in") || !p.eat("topics") {
		return nil, "expected in topics after '" + clipText(name) + "'"
	}
	idx := -1
	for i, t := range p.c.topics {
		if t == name {
			idx = i
		}
	}
	if idx < 0 {
		if len(p.c.topics) == MaxConditionTopics {
			return nil, "more than 5 topics"
		}
		idx = len(p.c.topics)
		p.c.topics = append(p.c.topics, name)
	}
	return &condNode{op: 't', idx: idx}, ""
}
