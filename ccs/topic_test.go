package ccs

import (
	"strconv"
	"strings"
	"testing"
)

func TestValidTopicName(t *testing.T) {
	for name, want := range map[string]bool{
		"news": true, "a-b_c.d~e%20": true, "A9": true, strings.Repeat("x", 900): true,
		"": false, strings.Repeat("x", 901): false, "a b": false, "a/b": false, "é": false, "a:b": false,
	} {
		if got := ValidTopicName(name); got != want {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", name, got, want)
		}
	}
	to := TopicPrefix + strings.Repeat("x", 900)
	if TargetTooLong(to) || !TargetTooLong(to+"x") || !TargetTooLong(strings.Repeat("r", 513)) {
		t.Error("TargetTooLong: a topic target may hold 900 name bytes, any other 512")
	}
}

// TestTopicTargetTooLongSaysItsBound: a topic "to" past its bound is
// refused with the topic name's bound in the text, not the id bound that
// every other target has.
func TestTopicTargetTooLongSaysItsBound(t *testing.T) {
	to := TopicPrefix + strings.Repeat("a", MaxTopicNameBytes+1)
	st, serr := Decode([]byte(`{"to":"` + to + `","message_id":"m","data":{"a":"b"}}`))
	if serr != nil {
		t.Fatal(serr.Text)
	}
	_, n := st.Downstream()
	if n == nil || !strings.Contains(n.Description, "longer than "+strconv.Itoa(MaxTopicNameBytes)) {
		t.Fatalf("nack %+v, want the topic bound %d in its text", n, MaxTopicNameBytes)
	}
}
