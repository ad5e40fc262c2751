package ccs

import (
	"strings"
	"testing"
)

func TestParseCondition(t *testing.T) {
	sub := func(c *Condition, names ...string) uint32 {
		var m uint32
		for i, tp := range c.Topics() {
			for _, n := range names {
				if tp == n {
					m |= 1 << i
				}
			}
		}
		return m
	}
	c, n := ParseCondition(`'a' in topics && ('b' IN Topics || "c" in topics) && !('d' in topics)`)
	if n != nil {
		t.Fatal(n.Description)
	}
	if got := strings.Join(c.Topics(), ","); got != "a,b,c,d" {
		t.Fatalf("topics %s", got)
	}
	for _, tt := range []struct {
		subs []string
		want bool
	}{
		{[]string{"a", "b"}, true}, {[]string{"a", "c"}, true}, {[]string{"a"}, false},
		{[]string{"b", "c"}, false}, {[]string{"a", "b", "d"}, false}, {nil, false},
	} {
		if got := c.Eval(sub(c, tt.subs...)); got != tt.want {
			t.Errorf("subscribed to %v: %v, want %v", tt.subs, got, tt.want)
		}
	}
	// && binds tighter than ||.
	c, _ = ParseCondition(`'a' in topics || 'b' in topics && 'c' in topics`)
	if !c.Eval(sub(c, "a")) || c.Eval(sub(c, "b")) || !c.Eval(sub(c, "b", "c")) {
		t.Error("precedence: a || (b && c)")
	}
	for _, bad := range []string{
		``, `'a'`, `'a' in`, `'a' in topics &&`, `('a' in topics`, `'a' in topics)`,
		`'a b' in topics`, `'a' in topics || !('b' in topics)`, `!('a' in topics)`,
		`'a' in topics && 'b' in topics && 'c' in topics && 'd' in topics && 'e' in topics && 'f' in topics`,
		`'a' in topics & 'b' in topics`, `'a in topics`, strings.Repeat("(", 100) + `'a' in topics` + strings.Repeat(")", 100),
	} {
		if _, n := ParseCondition(bad); n == nil || n.Code != CodeInvalidJSON || n.Sub != "INVALID_PARAMETERS" {
			t.Errorf("%.40q: %v, want INVALID_PARAMETERS", bad, n)
		}
	}
	// The same topic twice is one topic.
	if c, n := ParseCondition(`'a' in topics && ('a' in topics || 'b' in topics)`); n != nil || len(c.Topics()) != 2 {
		t.Errorf("repeated topic: %v %v", c, n)
	}
}
