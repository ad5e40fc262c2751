package ccs

import (
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
